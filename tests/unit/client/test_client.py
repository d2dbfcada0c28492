"""Every method of the async client against the fake factory, and the error hierarchy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagefactory_client import (
    APIError,
    AsyncClient,
    BadRequest,
    ClientError,
    EnterpriseRequired,
    ExtensionInfo,
    ImageFactoryError,
    NotFound,
    OverlayInfo,
    PayloadTooLarge,
    ServerError,
    TransportError,
    Unavailable,
)
from imagefactory_client.client import schematic_body, version_tag
from imagefactory_client.errors import error_for, one_line
from tests.support.ports import free_port
from tests.unit.client.fake_factory import ISO, SCHEMATIC, SCHEMATIC_ID, TALOSCTL, FakeFactory


async def test_create_schematic_from_yaml_text_bytes_and_mapping(client: AsyncClient, factory: FakeFactory) -> None:
    assert await client.create_schematic(SCHEMATIC.decode()) == SCHEMATIC_ID
    assert await client.create_schematic(SCHEMATIC) == SCHEMATIC_ID
    sid = await client.create_schematic({"customization": {"extraKernelArgs": ["a"]}})
    assert factory.schematics[sid] == b'{"customization": {"extraKernelArgs": ["a"]}}'
    assert [r[:2] for r in factory.requests] == [("POST", "/schematics")] * 3


async def test_create_schematic_errors_carry_the_one_line_message(client: AsyncClient) -> None:
    with pytest.raises(BadRequest) as caught:
        await client.create_schematic("something:\n")
    assert caught.value.status == 400
    assert caught.value.message.startswith("yaml: construct errors: line 1: field something not found")
    assert caught.value.request_id == "req-1"
    assert str(caught.value).endswith("(HTTP 400)")
    with pytest.raises(PayloadTooLarge):
        await client.create_schematic(b"x" * 5000)


async def test_get_schematic(client: AsyncClient) -> None:
    assert await client.get_schematic(SCHEMATIC_ID) == SCHEMATIC.decode()
    with pytest.raises(NotFound, match="schematic not found"):
        await client.get_schematic("a" * 64)


async def test_versions_and_broken_versions(client: AsyncClient, factory: FakeFactory) -> None:
    assert await client.versions() == ["v1.11.5", "v1.12.1"]
    assert await client.versions(broken=True) == ["v1.11.5"]
    assert factory.requests[-1][1] == "/versions?broken=true"


async def test_catalogs_are_typed_and_versions_get_their_v(client: AsyncClient, factory: FakeFactory) -> None:
    extensions = await client.extensions("1.12.1")
    assert extensions == [
        ExtensionInfo(
            name="siderolabs/gvisor",
            ref="ghcr.io/siderolabs/gvisor:20231214",
            digest="sha256:" + "1" * 64,
            author="Sidero Labs",
            description="gVisor runtime",
        )
    ]
    assert factory.requests[-1][1] == "/version/v1.12.1/extensions/official"
    overlays = await client.overlays("v1.12.1")
    assert overlays == [
        OverlayInfo(
            "rpi_generic",
            "siderolabs/sbc-raspberrypi",
            "ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0",
            "sha256:" + "2" * 64,
        )
    ]
    with pytest.raises(NotFound) as caught:
        await client.extensions("v1.99.0")
    assert caught.value.message == "version 1.99.0 is not available"


async def test_talosctl_list_and_download(client: AsyncClient, tmp_path: Path) -> None:
    urls = await client.talosctl("v1.12.1")
    assert urls == [client.url("talosctl", "v1.12.1", "talosctl-linux-amd64")]
    result = await client.download_talosctl("1.12.1", "talosctl-linux-amd64", tmp_path / "talosctl")
    assert (tmp_path / "talosctl").read_bytes() == TALOSCTL
    assert result.sha256 == hashlib.sha256(TALOSCTL).hexdigest()
    with pytest.raises(ServerError, match="internal server error") as caught:
        await client.download_talosctl("v1.12.1", "talosctl-plan9-mips", tmp_path / "nope")
    assert type(caught.value) is ServerError and caught.value.status == 500
    assert not (tmp_path / "nope").exists() and not (tmp_path / "nope.part").exists()


async def test_asset_info_and_download(client: AsyncClient, tmp_path: Path) -> None:
    info = await client.asset_info(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso")
    assert info.size == len(ISO)
    assert info.etag == f'"sha256:{hashlib.sha256(ISO).hexdigest()}"'
    result = await client.download(SCHEMATIC_ID, "1.12.1", "metal-amd64.iso", tmp_path / "out" / "a.iso")
    assert result.path.read_bytes() == ISO
    assert (result.size, result.resumed_from, result.attempts) == (len(ISO), 0, 1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.iso"]  # no .part, no .etag left


@pytest.mark.parametrize(
    ("schematic", "version", "path", "error", "message"),
    [
        ("a" * 12, "v1.12.1", "metal-amd64.iso", NotFound, 'schematic ID "aaaaaaaaaaaa" not found'),
        (SCHEMATIC_ID, "v1.99.0", "kernel-amd64", NotFound, "version 1.99.0 is not available"),
        (SCHEMATIC_ID, "v1.12.1", "metal-amd64.ssd", BadRequest, 'invalid profile path: "metal-amd64.ssd"'),
        (SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso.sha256", EnterpriseRequired, "enterprise not enabled"),
    ],
)
async def test_asset_errors(
    client: AsyncClient, tmp_path: Path, schematic: str, version: str, path: str, error: type[APIError], message: str
) -> None:
    with pytest.raises(error, match=message):
        await client.download(schematic, version, path, tmp_path / "x")
    with pytest.raises(error):  # HEAD has no body: the class still tells what went wrong
        await client.asset_info(schematic, version, path)


async def test_asset_url_quotes_segments_and_filename(client: AsyncClient) -> None:
    url = client.asset_url("a/b", "1.2.3", "x y", filename="my file.iso")
    assert url == f"{client.base_url}/image/a%2Fb/v1.2.3/x%20y?filename=my+file.iso"


async def test_pxe_keys_and_readiness(client: AsyncClient, factory: FakeFactory) -> None:
    assert (await client.pxe_script(SCHEMATIC_ID, "v1.12.1", "metal-x86_64")).startswith("#!ipxe\n")
    assert factory.requests[-1][1] == f"/pxe/{SCHEMATIC_ID}/v1.12.1/metal-x86_64"
    assert await client.cosign_public_key() == factory.public_key
    with pytest.raises(ServerError):
        await client.secureboot_certificate()
    factory.secureboot = True
    assert (await client.secureboot_certificate()).startswith(b"-----BEGIN CERTIFICATE-----")
    assert await client.ready()
    assert await client.fetch("versions") == b'["v1.11.5", "v1.12.1"]'


async def test_an_unreachable_factory_is_a_transport_error() -> None:
    async with AsyncClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError):
            await client.versions()
        assert not await client.ready()


async def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFACTORY_URL", "http://factory.example:9/")
    async with AsyncClient() as client:
        assert client.url("versions") == "http://factory.example:9/versions"
    monkeypatch.delenv("IMAGEFACTORY_URL")
    async with AsyncClient() as client:
        assert client.base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (402, EnterpriseRequired),
        (404, NotFound),
        (413, PayloadTooLarge),
        (418, ClientError),
        (500, ServerError),
        (502, ServerError),
        (503, Unavailable),
    ],
)
def test_error_for_maps_statuses_to_classes(status: int, cls: type[APIError]) -> None:
    error = error_for(status, "first line\nsecond\n", "rid")
    assert type(error) is cls and isinstance(error, ImageFactoryError)
    assert (error.status, error.message, error.request_id) == (status, "first line", "rid")


def test_one_line_skips_blank_lines_and_bounds_length() -> None:
    assert one_line("\n\n  404 page not found \n") == "404 page not found"
    assert len(one_line("<html>" + "x" * 1000)) == 300
    assert one_line("") == ""


def test_helpers() -> None:
    assert version_tag("1.2.3") == version_tag("v1.2.3") == "v1.2.3"
    assert schematic_body({"a": 1}) == b'{"a": 1}'
    assert schematic_body("x: 1") == b"x: 1"

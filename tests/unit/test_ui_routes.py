"""The web UI routes under aiohttp's test client, with fake catalog, schematic and builder stubs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import grpc
import pytest
import yaml
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from imagefactory.v1 import builder_pb2, catalog_pb2, common_pb2, schematic_pb2
from services.shared.config import Config
from tests.support.fakes import FakeBackends, FakeStub, rpc_error

ClientFactory = Callable[[Any], Awaitable[TestClient[Any, Any]]]
HX = {"HX-Request": "true"}
EXTENSIONS = [
    ("siderolabs/gvisor", "GVisor container runtime"),
    ("siderolabs/iscsi-tools", "iSCSI tools"),
    ("siderolabs/qemu-guest-agent", "QEMU guest agent"),
    ("siderolabs/metal-agent", "Omni metal agent"),
]


class Recorder:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.ensured: list[builder_pb2.EnsureAssetRequest] = []


async def list_versions(_: Any) -> catalog_pb2.ListVersionsResponse:
    return catalog_pb2.ListVersionsResponse(
        versions=["v1.6.7", "v1.9.6", "v1.12.1", "v1.13.0-beta.1"], latest_stable="v1.12.1"
    )


async def list_extensions(request: catalog_pb2.ListExtensionsRequest) -> catalog_pb2.ListExtensionsResponse:
    if request.version not in ("v1.6.7", "v1.9.6", "v1.12.1", "v1.13.0-beta.1"):
        raise rpc_error(grpc.StatusCode.NOT_FOUND, f"version {request.version[1:]} is not available")
    return catalog_pb2.ListExtensionsResponse(
        extensions=[
            catalog_pb2.ExtensionInfo(name=n, ref=f"ghcr.io/{n}:1.0-{request.version}", description=d)
            for n, d in EXTENSIONS
        ]
    )


async def list_talosctl(_: Any) -> catalog_pb2.ListTalosctlResponse:
    return catalog_pb2.ListTalosctlResponse(
        files=[catalog_pb2.TalosctlFile(name=n) for n in ("talosctl-linux-amd64", "talosctl-darwin-arm64")]
    )


class FakeBuilder:
    """EnsureAsset as a server stream: two progress events, then the asset (or an error)."""

    def __init__(self, recorder: Recorder, fail: grpc.aio.AioRpcError | None = None) -> None:
        self.recorder = recorder
        self.fail = fail

    def EnsureAsset(self, request: builder_pb2.EnsureAssetRequest, **_: Any) -> AsyncIterator[Any]:
        self.recorder.ensured.append(request)
        return self._stream(request)

    async def _stream(self, request: builder_pb2.EnsureAssetRequest) -> AsyncIterator[Any]:
        if self.fail is not None:
            raise self.fail
        for step, fraction in (("fetch", 0.25), ("xorriso", 0.75)):
            yield builder_pb2.EnsureAssetResponse(
                progress=common_pb2.BuildProgress(step=step, message=f"{step}…", fraction=fraction)
            )
        yield builder_pb2.EnsureAssetResponse(asset=common_pb2.AssetRef(size=42, file_name=request.path))


def backends(recorder: Recorder, builder: Any = None) -> FakeBackends:
    async def create(request: schematic_pb2.CreateSchematicRequest) -> schematic_pb2.CreateSchematicResponse:
        recorder.created.append(request.body.decode())
        return schematic_pb2.CreateSchematicResponse(
            id=hashlib.sha256(request.body).hexdigest(), canonical_yaml=request.body.decode()
        )

    async def get(request: schematic_pb2.GetSchematicRequest) -> schematic_pb2.GetSchematicResponse:
        if request.id != "a" * 64:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "schematic not found")
        custom = schematic_pb2.Customization(
            official_extensions=["siderolabs/gvisor"],
            extra_kernel_args=["nolapic", "-console"],
            bootloader=common_pb2.BOOTLOADER_SD_BOOT,
        )
        schematic = schematic_pb2.Schematic(customization=custom)
        return schematic_pb2.GetSchematicResponse(id=request.id, schematic=schematic)

    return FakeBackends(
        catalog=FakeStub(ListVersions=list_versions, ListExtensions=list_extensions, ListTalosctl=list_talosctl),
        schematic=FakeStub(CreateSchematic=create, GetSchematic=get),
        builder=cast(FakeStub, builder or FakeBuilder(recorder)),
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, recorder: Recorder) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(Config(), backends(recorder)))


def hidden(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)


METAL_DONE = [
    ("target", "metal"),
    ("version", "v1.12.1"),
    ("arch", "amd64"),
    ("extensions", "-"),
    ("extensions", "siderolabs/gvisor"),
    ("extensions", "siderolabs/iscsi-tools"),
    ("cmdline", "nolapic  nomodeset"),
    ("cmdline-set", "1"),
    ("bootloader", "auto"),
]
OLD_METAL = [("target", "metal"), ("version", "v1.9.6"), ("arch", "amd64"), ("extensions", "-")]


async def test_home_page_is_the_first_step_with_vendored_htmx(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/")
    html = await reply.text()
    assert reply.status == 200
    assert reply.content_type == "text/html"
    assert '<script src="/js/htmx.min.js" defer></script>' in html
    assert 'name="target" value="metal" checked' in html
    assert "<legend>What will run Talos Linux?</legend>" in html
    assert (await client.head("/")).status == 200
    js = await client.get("/js/htmx.min.js")
    assert js.status == 200
    assert "htmx" in await js.text()
    assert (await client.get("/css/ui.css")).status == 200
    assert (await client.get("/js/ui.js")).status == 200


async def test_each_step_posts_to_the_next_and_pushes_its_url(client: TestClient[Any, Any]) -> None:
    reply = await client.post("/ui/wizard", data=[("target", "metal")], headers=HX)
    html = await reply.text()
    assert reply.status == 200
    assert reply.headers["HX-Push-Url"] == "/?target=metal"
    assert "<html" not in html  # a fragment
    # Newest first, pre-releases grouped, the latest stable preselected.
    assert html.index("v1.13.0-beta.1") < html.index("v1.12.1") < html.index("v1.9.6")
    assert '<optgroup label="1.13 pre-releases">' in html
    assert '<option value="v1.12.1" selected>v1.12.1 (latest stable)</option>' in html
    assert hidden(html) == [("target", "metal")]

    reply = await client.post("/ui/wizard", data=[("target", "metal"), ("version", "v1.12.1")], headers=HX)
    html = await reply.text()
    assert 'name="arch" value="amd64" checked' in html
    assert 'name="secureboot"' in html

    reply = await client.post("/ui/wizard", data=METAL_DONE[:3], headers=HX)
    html = await reply.text()
    assert "siderolabs/gvisor" in html
    assert "siderolabs/metal-agent" not in html
    assert reply.headers["HX-Push-Url"] == "/?target=metal&version=v1.12.1&arch=amd64"


async def test_final_step_creates_the_schematic_and_lists_links(
    client: TestClient[Any, Any], recorder: Recorder
) -> None:
    reply = await client.post("/ui/wizard", data=METAL_DONE, headers=HX)
    html = await reply.text()
    assert reply.status == 200, html
    assert yaml.safe_load(recorder.created[-1]) == {
        "customization": {
            "extraKernelArgs": ["nolapic", "nomodeset"],
            "systemExtensions": {"officialExtensions": ["siderolabs/gvisor", "siderolabs/iscsi-tools"]},
        }
    }
    schematic_id = hashlib.sha256(recorder.created[-1].encode()).hexdigest()
    assert f'<code id="schematic-id" class="schematic-id">{schematic_id}</code>' in html
    base = f"http://127.0.0.1:8080/image/{schematic_id}/v1.12.1"
    for path in ("metal-amd64.iso", "metal-amd64.raw.zst", "metal-amd64.qcow2", "kernel-amd64", "metal-amd64-uki.efi"):
        assert f'href="{base}/{path}"' in html
    assert f"127.0.0.1:8080/metal-installer/{schematic_id}:v1.12.1" in html
    assert f"http://127.0.0.1:8080/pxe/{schematic_id}/v1.12.1/metal-amd64" in html
    assert 'href="http://127.0.0.1:8080/talosctl/v1.12.1/talosctl-darwin-arm64"' in html
    # The pushed URL renders the same page with a plain GET (reload, back button, no JS).
    page = await client.get(reply.headers["HX-Push-Url"])
    assert page.status == 200
    assert schematic_id in await page.text()


async def test_back_uncommits_the_previous_step_and_remembers_the_choice(client: TestClient[Any, Any]) -> None:
    data = [*METAL_DONE[:3], ("back", "1")]
    reply = await client.post("/ui/wizard", data=data, headers=HX)
    html = await reply.text()
    assert 'name="arch" value="amd64" checked' in html  # back on the arch step
    assert reply.headers["HX-Push-Url"] == "/?target=metal&version=v1.12.1&selected-arch=amd64"


async def test_plain_form_post_redirects_to_the_step_url(client: TestClient[Any, Any]) -> None:
    reply = await client.post("/ui/wizard", data=[("target", "cloud")], allow_redirects=False)
    assert reply.status == 303
    assert reply.headers["Location"] == "/?target=cloud"
    followed = await client.post("/ui/wizard", data=[("target", "cloud"), ("version", "v1.12.1")])
    assert followed.status == 200
    html = await followed.text()
    assert 'name="platform" value="aws" checked' in html
    assert "<html" in html


async def test_single_arch_cloud_skips_the_arch_step(client: TestClient[Any, Any]) -> None:
    data = [("target", "cloud"), ("version", "v1.12.1"), ("platform", "hcloud")]
    reply = await client.post("/ui/wizard", data=data, headers=HX)
    assert "arch=amd64" in reply.headers["HX-Push-Url"]
    assert 'name="extensions" value="-"' in await reply.text()


async def test_extension_search_keeps_selected_ones(client: TestClient[Any, Any]) -> None:
    data = [("version", "v1.12.1"), ("search", "QEMU"), ("extensions", "siderolabs/gvisor")]
    reply = await client.post("/ui/extensions-list", data=data)
    html = await reply.text()
    assert reply.status == 200
    assert "siderolabs/qemu-guest-agent" in html
    assert 'value="siderolabs/gvisor" checked' in html
    assert "siderolabs/iscsi-tools" not in html


async def test_prefill_from_a_schematic_id(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/?schematic-id=" + "a" * 64)
    html = await reply.text()
    assert reply.status == 200
    assert dict(hidden(html)) == {
        "selected-extensions": "siderolabs/gvisor",
        "selected-cmdline": "nolapic -console",
        "selected-bootloader": "sd-boot",
    }
    missing = await client.get("/?schematic-id=" + "b" * 64)
    assert (missing.status, await missing.text()) == (404, "schematic not found\n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([("target", "phone")], "unknown hardware type 'phone'"),
        ([("target", "metal"), ("version", "v9.9.9")], "version v9.9.9 is not available"),
        ([("target", "sbc"), ("version", "v1.6.7")], "version v1.6.7 is not available"),
        ([("target", "cloud"), ("version", "v1.12.1"), ("platform", "nowhere")], "platform 'nowhere' is not offered"),
        ([("target", "metal"), ("version", "v1.12.1"), ("arch", "riscv64")], "architecture 'riscv64' is not offered"),
        (
            [("target", "metal"), ("version", "v1.12.1"), ("arch", "amd64"), ("extensions", "siderolabs/nope")],
            "extension 'siderolabs/nope' is not in the catalog",
        ),
        ([*METAL_DONE[:-1], ("bootloader", "lilo")], "unknown bootloader 'lilo'"),
        (
            [*OLD_METAL, ("cmdline-set", "1"), ("embedded-config", "machine: {}")],
            "an embedded machine configuration needs Talos 1.12",
        ),
    ],
)
async def test_bad_input_is_a_400_with_one_line(
    client: TestClient[Any, Any], data: list[tuple[str, str]], message: str
) -> None:
    for headers in (HX, {}):
        reply = await client.post("/ui/wizard", data=data, headers=headers, allow_redirects=False)
        text = await reply.text()
        assert reply.status == 400, text
        assert text.startswith(message)
        assert text.count("\n") == 1
    query = "&".join(f"{k}={v}" for k, v in data)
    assert (await client.get("/?" + query)).status == 400


async def test_progress_streams_build_events_then_ready(client: TestClient[Any, Any], recorder: Recorder) -> None:
    reply = await client.get(f"/ui/progress?schematic-id={'c' * 64}&version=1.12.1&path=metal-amd64.iso")
    assert reply.status == 200
    assert reply.content_type == "text/event-stream"
    body = await reply.text()
    events = [block.split("\n")[0] for block in body.strip().split("\n\n")]
    assert events == ["event: progress", "event: progress", "event: ready"]
    assert '"fraction":0.25' in body
    assert recorder.ensured[-1].version == "v1.12.1"


@pytest.mark.parametrize(
    "query",
    [
        "schematic-id=xyz&version=v1.12.1&path=metal-amd64.iso",
        f"schematic-id={'c' * 64}&version=v1.12&path=metal-amd64.iso",
        f"schematic-id={'c' * 64}&version=v1.12.1&path=../etc/passwd",
        f"schematic-id={'c' * 64}&version=v1.12.1",
    ],
)
async def test_progress_rejects_bad_input(client: TestClient[Any, Any], query: str) -> None:
    reply = await client.get("/ui/progress?" + query)
    assert reply.status == 400
    assert (await reply.text()).count("\n") == 1


async def test_progress_errors_before_the_stream_keep_their_status(
    aiohttp_client: ClientFactory, recorder: Recorder
) -> None:
    failing = FakeBuilder(recorder, fail=rpc_error(grpc.StatusCode.NOT_FOUND, f'schematic ID "{"c" * 64}" not found'))
    client = await aiohttp_client(create_app(Config(), backends(recorder, failing)))
    reply = await client.get(f"/ui/progress?schematic-id={'c' * 64}&version=v1.12.1&path=metal-amd64.iso")
    assert reply.status == 404
    assert "not found" in await reply.text()


async def test_language_parameter_sets_a_cookie(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/?lang=en&target=metal", headers=HX)
    assert reply.status == 200
    assert reply.headers["HX-Redirect"] == "/?target=metal"
    assert "lang=en" in reply.headers["Set-Cookie"]
    plain = await client.get("/?lang=en&target=metal", allow_redirects=False)
    assert (plain.status, plain.headers["Location"]) == (303, "/?target=metal")
    empty = await client.get("/?lang=")
    assert (empty.status, await empty.text()) == (400, "missing lang param\n")


def test_pushed_urls_round_trip() -> None:
    url = "/?target=metal&version=v1.12.1&selected-arch=amd64"
    assert parse_qsl(urlsplit(url).query) == [("target", "metal"), ("version", "v1.12.1"), ("selected-arch", "amd64")]


async def test_version_doc_fragment(client: TestClient[Any, Any]) -> None:
    reply = await client.get("/ui/version-doc?version=v1.12.1")
    assert reply.status == 200
    assert 'href="https://docs.siderolabs.com/talos/v1.12/"' in await reply.text()
    bad = await client.get("/ui/version-doc?version=1.12")
    assert (bad.status, await bad.text()) == (400, "version 1.12 is not available\n")
    step = await client.get("/?target=metal")
    assert 'href="https://docs.siderolabs.com/talos/v1.12/"' in await step.text()  # the preselected version's


FIELD_NAMES = st.sampled_from(
    [
        *("target", "version", "platform", "board", "arch", "secureboot", "extensions", "cmdline", "cmdline-set"),
        *("embedded-config", "overlay-options", "bootloader", "back", "action", "search", "selected-arch", "x"),
    ]
)
FIELD_VALUES = st.one_of(
    st.sampled_from(["metal", "cloud", "sbc", "v1.12.1", "v1.9.6", "1.12", "aws", "hcloud", "rpi_generic"]),
    st.sampled_from(
        ["amd64", "arm64", "1", "-", "siderolabs/gvisor", "filter", "restart", "auto", "grub", "[", "a: b"]
    ),
    st.text(max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.lists(st.tuples(FIELD_NAMES, FIELD_VALUES), max_size=12), htmx=st.booleans())
async def test_no_form_makes_the_wizard_fail(
    client: TestClient[Any, Any], form: list[tuple[str, str]], htmx: bool
) -> None:
    """Any mix of fields is a step (200/303) or a one-line 4xx, never a 500."""
    reply = await client.post("/ui/wizard", data=form, headers=HX if htmx else {}, allow_redirects=False)
    text = await reply.text()
    assert reply.status in (200, 303) or (400 <= reply.status < 500 and text.count("\n") == 1), (reply.status, text)
    if reply.status == 200 and htmx:
        page = await client.get(reply.headers["HX-Push-Url"])
        assert page.status == 200, await page.text()


async def test_no_js_filter_shows_the_extension_step_again_filtered(client: TestClient[Any, Any]) -> None:
    data = [*METAL_DONE[:3], ("extensions", "-"), ("extensions", "siderolabs/gvisor"), ("search", "qemu")]
    reply = await client.post("/ui/wizard", data=[*data, ("action", "filter")], allow_redirects=False)
    assert reply.status == 303
    location = reply.headers["Location"]
    assert location.endswith("&selected-extensions=-&selected-extensions=siderolabs%2Fgvisor&search=qemu")
    html = await (await client.get(location)).text()
    assert 'value="siderolabs/gvisor" checked' in html
    assert "siderolabs/qemu-guest-agent" in html
    assert "siderolabs/iscsi-tools" not in html

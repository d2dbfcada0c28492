"""Extension/overlay/talosctl catalogs and the extension alias table (factory spec §7.3 to §7.5, §2.5, §4)."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from services.catalog.catalogs import (
    EXTENSION_ALIASES,
    ExtensionEntry,
    OverlayEntry,
    TalosctlFile,
    find_extension,
    find_overlay,
    parse_extensions,
    parse_overlays,
    parse_talosctl_files,
    repository_with_namespace,
)
from services.catalog.errors import CatalogFormatError
from services.catalog.versions import parse
from services.shared.errors import InvalidArgument
from tests.unit.catalog.conftest import OciLayout

GVISOR = "ghcr.io/siderolabs/gvisor:20231214.0@sha256:5ab365f2b98ab885b1d9a6ebb2e2b06d0a7887d2c173a2b7d3f9e0e4f2f4f1cb"
ZFS = "ghcr.io/siderolabs/zfs:2.2.2@sha256:6f9e2d0c8a9d18b9a54c3d0f7c6b3a2f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b"
DESCRIPTIONS = f'"{GVISOR}":\n  author: Sidero Labs\n  description: gVisor container runtime\n'.encode()


def test_extensions_spec_example() -> None:
    files = {"image-digests": f"{GVISOR}\n{ZFS}\n".encode(), "descriptions.yaml": DESCRIPTIONS}
    gvisor, zfs = parse_extensions(files, registry="ghcr.io")
    assert gvisor == ExtensionEntry(
        name="siderolabs/gvisor",
        ref="ghcr.io/siderolabs/gvisor:20231214.0",
        digest="sha256:5ab365f2b98ab885b1d9a6ebb2e2b06d0a7887d2c173a2b7d3f9e0e4f2f4f1cb",
        author="Sidero Labs",
        description="gVisor container runtime",
        pull_repository="ghcr.io/siderolabs/gvisor",
        tag="20231214.0",
    )
    assert (zfs.name, zfs.author, zfs.description) == ("siderolabs/zfs", "", "")


@pytest.mark.parametrize(
    ("namespace", "pull"),
    [("", "harbor.example.com/siderolabs/gvisor"), ("ghcrio", "harbor.example.com/ghcrio/siderolabs/gvisor"),
     ("ghcrio/", "harbor.example.com/ghcrio/siderolabs/gvisor")],
)  # fmt: skip
def test_extensions_registry_replaced_namespace_only_for_pulls(namespace: str, pull: str) -> None:
    # The catalog's registry is replaced by the configured one; the namespace (a pull-through cache
    # prefix) never leaks into the identity (IF versions_test.go, spec §2.5, §7.3).
    (entry,) = parse_extensions({"image-digests": GVISOR.encode()}, registry="harbor.example.com", namespace=namespace)
    assert entry.name == "siderolabs/gvisor"
    assert entry.ref == "harbor.example.com/siderolabs/gvisor:20231214.0"
    assert entry.pull_repository == pull


def test_extensions_lines_trimmed_and_without_at_skipped() -> None:
    text = f"\r\n  {GVISOR}  \r\n# comment\nghcr.io/siderolabs/no-digest:1.0\n\n{ZFS}".encode()
    assert [e.name for e in parse_extensions({"image-digests": text}, registry="ghcr.io")] == [
        "siderolabs/gvisor",
        "siderolabs/zfs",
    ]


def test_extension_without_registry_or_tag() -> None:
    (entry,) = parse_extensions({"image-digests": b"siderolabs/foo@sha256:" + b"a" * 64}, registry="ghcr.io")
    assert (entry.name, entry.ref) == ("siderolabs/foo", "ghcr.io/siderolabs/foo:latest")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "failed to find image-digests file"),
        ({"descriptions.yaml": DESCRIPTIONS}, "failed to find image-digests file"),
        ({"image-digests": b"no digests here\n"}, "failed to find image-digests file"),
        ({"image-digests": b"ghcr.io/Bad/Name:1@sha256:00"}, "failed to parse tagged reference ghcr.io/Bad/Name:1: "),
        ({"image-digests": GVISOR.encode(), "descriptions.yaml": b"[1, 2]"}, "error reading descriptions.yaml file: "),
        ({"image-digests": GVISOR.encode(), "descriptions.yaml": b"a: [b"}, "error reading descriptions.yaml file: "),
        (
            {"image-digests": GVISOR.encode(), "descriptions.yaml": f'"{GVISOR}":\n  author: [x]\n'.encode()},
            "error reading descriptions.yaml file: ",
        ),
    ],
)
def test_extensions_errors(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(CatalogFormatError) as info:
        parse_extensions(files, registry="ghcr.io")
    assert info.value.message.startswith(message)


def test_descriptions_scalars_stay_strings() -> None:
    yaml_text = f'"{GVISOR}":\n  author: yes\n  description: 1.10\n'.encode()
    (entry,) = parse_extensions({"image-digests": GVISOR.encode(), "descriptions.yaml": yaml_text}, registry="ghcr.io")
    assert (entry.author, entry.description) == ("yes", "1.10")
    (empty,) = parse_extensions({"image-digests": GVISOR.encode(), "descriptions.yaml": b""}, registry="ghcr.io")
    assert (empty.author, empty.description) == ("", "")


def _exported_root_files(layout: OciLayout) -> dict[str, bytes]:
    """Flatten the image's layers (each a gzipped tar) into {root file name: bytes}."""
    manifest = layout.manifest(layout.top())
    files: dict[str, bytes] = {}
    for layer in manifest.layers():
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layout.blob(layer.digest)))) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return files


def test_real_extensions_catalog_image(catalog_image: OciLayout) -> None:
    files = _exported_root_files(catalog_image)
    assert set(files) == {"image-digests", "descriptions.yaml"}
    (entry,) = parse_extensions(files, registry="ghcr.io")
    my_extension = OciLayout(catalog_image.root.parent / "my-extension-image")
    assert entry == ExtensionEntry(
        name="extension-testing/my-extension",
        ref="ghcr.io/extension-testing/my-extension:v1.0.0",
        digest=my_extension.top().digest,  # the catalog pins the extension image that sits beside it
        author="TEST",
        description="[core] TESTESTEST\n",
        pull_repository="ghcr.io/extension-testing/my-extension",
        tag="v1.0.0",
    )


OVERLAYS_YAML = b"""overlays:
  - name: rpi_generic
    image: ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0
    digest: sha256:849ace01
  - name: rock64
    image: ghcr.io/siderolabs/sbc-rockchip:v0.1.0
    digest: sha256:1234
"""


def test_overlays_spec_example() -> None:
    rpi, rock = parse_overlays({"overlays.yaml": OVERLAYS_YAML}, registry="harbor.example.com", namespace="ghcrio")
    assert rpi == OverlayEntry(
        name="rpi_generic",
        image="siderolabs/sbc-raspberrypi",
        ref="ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0",
        digest="sha256:849ace01",
        pull_repository="harbor.example.com/ghcrio/siderolabs/sbc-raspberrypi",
    )
    assert rock.name == "rock64"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "failed to find overlays.yaml file"),
        ({"overlays.yaml": b""}, "failed to find overlays.yaml file"),
        ({"overlays.yaml": b"overlays: []\n"}, "failed to find overlays.yaml file"),
        ({"overlays.yaml": b"overlays: {a: b}\n"}, "error reading overlays.yaml file: "),
        ({"overlays.yaml": b"overlays:\n  - name: x\n    image: ghcr.io/UP:1\n"}, "failed to parse tagged reference "),
        ({"overlays.yaml": b"overlays: [\n"}, "error reading overlays.yaml file: "),
    ],
)
def test_overlays_errors(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(CatalogFormatError) as info:
        parse_overlays(files, registry="ghcr.io")
    assert info.value.message.startswith(message)


def test_talosctl_files() -> None:
    names = ["talosctl-linux-amd64", "talosctl-windows-arm64.exe", "README", "talosctl-darwin-arm64", "usr"]
    files = parse_talosctl_files(names)
    assert files == [
        TalosctlFile("linux", "amd64"),
        TalosctlFile("windows", "arm64", ".exe"),
        TalosctlFile("darwin", "arm64"),
    ]
    assert [f.name for f in files] == ["talosctl-linux-amd64", "talosctl-windows-arm64.exe", "talosctl-darwin-arm64"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "failed to find talosctl binaries"),
        (["README", "talosctl"], "failed to find talosctl binaries"),
        (["talosctl-linux-amd64", "talosctl-linux-arm-v7"], "invalid talosctl file name talosctl-linux-arm-v7"),
        (["talosctl-linux"], "invalid talosctl file name talosctl-linux"),
    ],
)
def test_talosctl_errors(names: list[str], message: str) -> None:
    with pytest.raises(CatalogFormatError) as info:
        parse_talosctl_files(names)
    assert info.value.message == message


def _entry(name: str) -> ExtensionEntry:
    return ExtensionEntry(name=name, ref=f"ghcr.io/{name}:1", digest="sha256:" + "0" * 64)


CATALOG = [_entry("siderolabs/gvisor"), _entry("siderolabs/i915"), _entry("siderolabs/v4l-uvc-drivers")]


def test_find_extension_exact_then_alias() -> None:
    v = parse("1.9.0")
    assert find_extension(CATALOG, "siderolabs/gvisor", v).name == "siderolabs/gvisor"
    assert find_extension(CATALOG, "siderolabs/i915-ucode", v).name == "siderolabs/i915"
    assert find_extension(CATALOG, "siderolabs/v4l-uvc", v).name == "siderolabs/v4l-uvc-drivers"
    # An exact match wins over the alias when an old catalog still has the old name.
    old = [_entry("siderolabs/i915-ucode"), _entry("siderolabs/i915")]
    assert find_extension(old, "siderolabs/i915-ucode", v).name == "siderolabs/i915-ucode"


def test_find_extension_not_available() -> None:
    with pytest.raises(InvalidArgument) as info:
        find_extension(CATALOG, "siderolabs/gasket", parse("1.7.0-alpha.0"))
    assert (
        info.value.message == 'official extension "siderolabs/gasket" is not available for Talos version v1.7.0-alpha.0'
    )


def test_alias_table_is_spec_table() -> None:
    assert len(EXTENSION_ALIASES) == 11
    assert EXTENSION_ALIASES["siderolabs/nvidia-fabricmanager"] == "siderolabs/nvidia-fabric-manager-lts"
    assert EXTENSION_ALIASES["siderolabs/amdgpu-firmware"] == "siderolabs/amdgpu"
    assert all(k.startswith("siderolabs/") and v.startswith("siderolabs/") for k, v in EXTENSION_ALIASES.items())


def test_find_overlay() -> None:
    overlays = parse_overlays({"overlays.yaml": OVERLAYS_YAML}, registry="ghcr.io")
    assert find_overlay(overlays, "rock64", parse("1.7.0")).image == "siderolabs/sbc-rockchip"
    with pytest.raises(InvalidArgument) as info:
        find_overlay(overlays, "nope", parse("1.7.0"))
    assert info.value.message == 'official overlay "nope" is not available for Talos version v1.7.0'


def test_repository_with_namespace() -> None:
    assert repository_with_namespace("harbor.example.com", "", "siderolabs/imager") == (
        "harbor.example.com/siderolabs/imager"
    )
    assert repository_with_namespace("harbor.example.com", "ghcrio/", "siderolabs/imager") == (
        "harbor.example.com/ghcrio/siderolabs/imager"
    )

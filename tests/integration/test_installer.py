"""Installer images checked by independent OCI tools: skopeo and umoci (imager §9, §12; factory §9.3, §15).

The base is a small fake installer (one layer with `usr/bin/installer`, Entrypoint/Env/Labels like
installer-base, imager §1.2); the boot assets are stand-in bytes, which is all the image format cares about.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.builder.assets.installer import (
    InstallerImage,
    InstallerSpec,
    OverlaySpec,
    build_installer_image,
    docker_archive,
    write_installer_index,
)
from services.builder.enums import Arch
from tests.support.real_tools import require_tools
from tests.unit.builder_installer.fakes import INSTALLER_BIN, boot_files, make_base_layout, make_overlay_tree

pytestmark = pytest.mark.tools
EPOCH = 1559424892
BASE_REF = "ghcr.io/siderolabs/installer-base:v1.10.0"


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools("skopeo", "umoci")


def _run(*argv: str | Path) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}: {proc.stderr}"
    return proc.stdout


def _skopeo(*argv: str | Path) -> str:
    return _run("skopeo", "--insecure-policy", *argv)


def _spec(tmp_path: Path, arch: Arch = Arch.AMD64, **kwargs: Any) -> InstallerSpec:
    base = tmp_path / f"base-{arch}"
    if not base.exists():
        make_base_layout(base, arch.value, nested_index=True)
    files = boot_files(tmp_path / "files")
    options: dict[str, Any] = {
        "arch": arch,
        "base": base,
        "image_ref": BASE_REF,
        "source_date_epoch": EPOCH,
        "use_sd_boot_for_uefi": True,
        "uki": files["uki"],
        "sd_boot": files["sd_boot"],
        **kwargs,
    }
    return InstallerSpec(**options)


def _build(spec: InstallerSpec, out: Path) -> InstallerImage:
    return asyncio.run(build_installer_image(spec, out))


def _unpack(layout_ref: str, bundle: Path) -> Path:
    _run("umoci", "unpack", "--rootless", "--image", layout_ref, bundle)
    return bundle / "rootfs"


def test_skopeo_reads_and_copies_the_layout(tmp_path: Path) -> None:
    image = _build(_spec(tmp_path), tmp_path / "oci")
    assert _skopeo("inspect", "--raw", f"oci:{tmp_path / 'oci'}").encode() == image.manifest.data
    info = json.loads(_skopeo("inspect", f"oci:{tmp_path / 'oci'}"))
    assert (info["Architecture"], info["Os"], len(info["Layers"])) == ("amd64", "linux", 2)
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Labels"]["alpha.talos.dev/version"] == "v1.10.0"
    assert "TARGETARCH=amd64" in info["Env"]
    copied = tmp_path / "dir"
    _skopeo("copy", f"oci:{tmp_path / 'oci'}", f"dir:{copied}")
    assert (copied / "manifest.json").read_bytes() == image.manifest.data
    for blob in image.blobs():
        assert (copied / blob.digest.split(":")[1]).read_bytes() == blob.path.read_bytes()


def test_umoci_unpacks_files_where_the_spec_puts_them(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _build(spec, tmp_path / "oci")
    rootfs = _unpack(f"{tmp_path / 'oci'}:latest", tmp_path / "bundle")
    assert (rootfs / "usr/bin/installer").read_bytes() == INSTALLER_BIN
    assert (rootfs / "bin").is_symlink()
    assert (rootfs / "usr/install/amd64/vmlinuz.efi").read_bytes() == spec.uki.read_bytes()  # type: ignore[union-attr]
    assert (rootfs / "usr/install/amd64/systemd-boot.efi").read_bytes() == spec.sd_boot.read_bytes()  # type: ignore[union-attr]
    assert sorted(p.name for p in (rootfs / "usr/install/amd64").iterdir()) == ["systemd-boot.efi", "vmlinuz.efi"]
    runtime = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert runtime["process"]["args"] == ["/bin/installer"]
    assert "TARGETARCH=amd64" in runtime["process"]["env"]
    assert "LAYER" in _run("umoci", "stat", "--image", f"{tmp_path / 'oci'}:latest")


def test_legacy_installer_carries_kernel_and_initramfs(tmp_path: Path) -> None:
    files = boot_files(tmp_path / "files")
    spec = _spec(tmp_path, use_sd_boot_for_uefi=False, kernel=files["kernel"], initramfs=files["initramfs"])
    _build(spec, tmp_path / "oci")
    rootfs = _unpack(f"{tmp_path / 'oci'}:latest", tmp_path / "bundle")
    assert sorted(p.name for p in (rootfs / "usr/install/amd64").iterdir()) == ["initramfs.xz", "vmlinuz"]
    assert (rootfs / "usr/install/amd64/vmlinuz").read_bytes() == files["kernel"].read_bytes()


def test_overlay_installer_has_three_layers(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay", "arm64", "rpi_generic")
    image = _build(_spec(tmp_path, Arch.ARM64, overlay=OverlaySpec(tree, "rpi_generic", "a: b\n")), tmp_path / "oci")
    info = json.loads(_skopeo("inspect", "--override-arch", "arm64", f"oci:{tmp_path / 'oci'}"))
    assert len(info["Layers"]) == 3 == len(image.layers)
    rootfs = _unpack(f"{tmp_path / 'oci'}:latest", tmp_path / "bundle")
    assert (rootfs / "overlay/artifacts/arm64/firmware/boot/fixup.dat").read_bytes() == b"fixup"
    assert (rootfs / "overlay/extra-options").read_text() == "a: b\n"
    assert (rootfs / "overlay/installers/default").stat().st_mode & 0o777 == 0o755
    assert (rootfs / "usr/install/arm64/vmlinuz.efi").is_file()


def test_docker_archive_is_accepted_by_skopeo(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    image = _build(spec, tmp_path / "oci")
    tar = asyncio.run(docker_archive([image], tmp_path / "installer-amd64.tar"))
    info = json.loads(_skopeo("inspect", f"docker-archive:{tar}"))
    assert info["Architecture"] == "amd64"
    assert info["Layers"] == [layer.diff_id for layer in image.layers]  # skopeo names layers by diff_id here
    tagged = json.loads(_skopeo("inspect", f"docker-archive:{tar}:{BASE_REF}"))  # RepoTags = the base ref
    assert tagged["Name"] == BASE_REF.rsplit(":", 1)[0] and tagged["Digest"] == info["Digest"]
    config = json.loads(_skopeo("inspect", "--config", f"docker-archive:{tar}"))
    assert config["config"]["Entrypoint"] == ["/bin/installer"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    _skopeo("copy", f"docker-archive:{tar}", f"oci:{tmp_path / 'loaded'}:loaded")
    rootfs = _unpack(f"{tmp_path / 'loaded'}:loaded", tmp_path / "bundle")
    # factory §15: layer 2 of the download is exactly the UKI and sd-boot.
    assert sorted(p.name for p in (rootfs / "usr/install/amd64").iterdir()) == ["systemd-boot.efi", "vmlinuz.efi"]
    assert (rootfs / "usr/bin/installer").read_bytes() == INSTALLER_BIN


def test_multi_platform_index(tmp_path: Path) -> None:
    out = tmp_path / "oci"
    images = [_build(_spec(tmp_path, arch), out) for arch in (Arch.AMD64, Arch.ARM64)]
    index = asyncio.run(write_installer_index(images, out, "v1.10.0"))
    assert _skopeo("inspect", "--raw", f"oci:{out}:v1.10.0").encode() == index.data
    for arch, image in zip(("amd64", "arm64"), images, strict=True):
        info = json.loads(_skopeo("inspect", "--override-arch", arch, f"oci:{out}:v1.10.0"))
        assert info["Architecture"] == arch and info["Layers"] == [layer.digest for layer in image.layers]
    _skopeo("copy", "--all", f"oci:{out}:v1.10.0", f"dir:{tmp_path / 'all'}")
    assert (tmp_path / "all" / "manifest.json").read_bytes() == index.data


def test_rebuilding_from_a_built_installer_replaces_its_artifacts(tmp_path: Path) -> None:
    first = _build(_spec(tmp_path), tmp_path / "first")
    newer = tmp_path / "newer-uki.efi"
    newer.write_bytes(b"MZ newer uki")
    second = _build(_spec(tmp_path, base=tmp_path / "first", uki=newer), tmp_path / "second")
    assert len(second.layers) == 2 and second.layers[0].digest == first.layers[0].digest
    rootfs = _unpack(f"{tmp_path / 'second'}:latest", tmp_path / "bundle")
    assert (rootfs / "usr/install/amd64/vmlinuz.efi").read_bytes() == b"MZ newer uki"


def test_digests_are_reproducible(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay", "amd64", "board")
    spec = _spec(tmp_path, overlay=OverlaySpec(tree, "board"))
    digests = []
    for name in ("one", "two"):
        _build(spec, tmp_path / name)
        digests.append(json.loads(_skopeo("inspect", f"oci:{tmp_path / name}"))["Digest"])
        tar = asyncio.run(docker_archive([_build(spec, tmp_path / f"{name}-again")], tmp_path / f"{name}.tar"))
        digests.append(_run("sha256sum", tar).split()[0])
    assert digests[0] == digests[2] and digests[1] == digests[3]

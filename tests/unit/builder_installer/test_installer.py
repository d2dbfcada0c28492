"""Installer images from a fake base (assets/installer.py; imager §9, §10; factory §9.3, §15)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from services.builder.assets.installer import (
    BaseImage,
    InstallerSpec,
    OverlaySpec,
    base_history,
    build_installer_image,
    kept_base_layers,
    write_installer_index,
)
from services.builder.enums import Arch
from services.builder.steps.oci_image import REF_NAME, Blob, OciLayout
from services.shared.errors import VerificationFailed
from services.shared.oci import Descriptor
from services.shared.oci import media_types as mt
from tests.unit.builder_installer.fakes import (
    ENTRYPOINT,
    FakeFile,
    base_container_config,
    base_layer_files,
    boot_files,
    layer_contents,
    make_base_layout,
    make_overlay_tree,
    read_layer,
)

EPOCH = 1559424892
BASE_REF = "ghcr.io/siderolabs/installer-base:v1.10.0"


def _spec(tmp_path: Path, arch: Arch = Arch.AMD64, **kwargs: Any) -> InstallerSpec:
    base = tmp_path / f"base-{arch}"
    if not base.exists():
        make_base_layout(base, arch.value)
    files = boot_files(tmp_path / "files")
    defaults: dict[str, Any] = {
        "arch": arch,
        "base": base,
        "image_ref": BASE_REF,
        "source_date_epoch": EPOCH,
        "use_sd_boot_for_uefi": True,
        "uki": files["uki"],
        "sd_boot": files["sd_boot"],
        "kernel": files["kernel"],
        "initramfs": files["initramfs"],
    }
    return InstallerSpec(**{**defaults, **kwargs})


def _config(image: Any) -> dict[str, Any]:
    return json.loads(image.config.path.read_bytes())  # type: ignore[no-any-return]


async def test_unified_installer_has_base_layer_and_boot_assets(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    image = await build_installer_image(spec, tmp_path / "out")
    base = OciLayout(tmp_path / "base-amd64")
    assert len(image.layers) == 2
    base_digest = json.loads(base.blob_path(base.index_entries()[0].digest).read_bytes())["layers"][0]["digest"]
    assert image.layers[0].digest == base_digest  # taken as-is
    assert image.layers[0].path.read_bytes() == base.blob_path(base_digest).read_bytes()
    members = read_layer(image.layers[1].path)
    assert [m.name for m in members] == ["usr/install/amd64/systemd-boot.efi", "usr/install/amd64/vmlinuz.efi"]
    assert all(m.isfile() and m.mode == 0o644 and m.mtime == EPOCH for m in members)
    contents = layer_contents(image.layers[1].path)
    assert contents["usr/install/amd64/vmlinuz.efi"] == spec.uki.read_bytes()  # type: ignore[union-attr]
    assert contents["usr/install/amd64/systemd-boot.efi"] == spec.sd_boot.read_bytes()  # type: ignore[union-attr]


async def test_manifest_config_and_layout(tmp_path: Path) -> None:
    image = await build_installer_image(_spec(tmp_path, Arch.ARM64), tmp_path / "out")
    manifest = json.loads(image.manifest.data)
    assert manifest["mediaType"] == mt.OCI_MANIFEST and manifest["schemaVersion"] == 2
    assert manifest["config"] == image.config.descriptor.to_json()
    assert manifest["layers"] == [layer.descriptor.to_json() for layer in image.layers]
    assert {layer.descriptor.media_type for layer in image.layers} == {mt.OCI_LAYER_GZIP}
    config = _config(image)
    assert (config["architecture"], config["os"], config["created"]) == ("arm64", "linux", "2019-06-01T21:34:52Z")
    assert config["config"] == base_container_config("arm64")
    assert config["config"]["Entrypoint"] == ENTRYPOINT
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id for layer in image.layers]}
    assert [h["created_by"] for h in config["history"]] == [
        "COPY layer 0",
        'ENTRYPOINT ["/bin/installer"]',
        "image-factory: boot assets usr/install/arm64",
    ]
    layout = OciLayout(tmp_path / "out")
    assert layout.blob_path(image.manifest.digest).read_bytes() == image.manifest.data
    assert image.manifest_path == layout.blob_path(image.manifest.digest)
    (entry,) = layout.index_entries()
    assert entry.digest == image.manifest.digest and entry.annotations == {REF_NAME: "latest"}
    assert str(entry.platform) == "linux/arm64" and str(image.descriptor.platform) == "linux/arm64"
    assert image.repo_tags == (BASE_REF,)
    assert image.blobs() == (image.config, *image.layers)


@pytest.mark.parametrize(
    ("sd_boot_for_uefi", "secureboot", "names"),
    [
        (True, False, ["systemd-boot.efi", "vmlinuz.efi"]),
        (True, True, ["systemd-boot.efi", "vmlinuz.efi"]),
        (False, True, ["systemd-boot.efi", "vmlinuz.efi.signed"]),
        (False, False, ["initramfs.xz", "vmlinuz"]),
    ],
)
async def test_artifact_names_by_version_and_secureboot(
    tmp_path: Path, sd_boot_for_uefi: bool, secureboot: bool, names: list[str]
) -> None:
    spec = _spec(tmp_path, use_sd_boot_for_uefi=sd_boot_for_uefi, secureboot=secureboot)
    image = await build_installer_image(spec, tmp_path / "out")
    assert [m.name for m in read_layer(image.layers[-1].path)] == [f"usr/install/amd64/{n}" for n in names]
    if not sd_boot_for_uefi and not secureboot:
        contents = layer_contents(image.layers[-1].path)
        assert contents["usr/install/amd64/vmlinuz"] == spec.kernel.read_bytes()  # type: ignore[union-attr]
        assert contents["usr/install/amd64/initramfs.xz"] == spec.initramfs.read_bytes()  # type: ignore[union-attr]


@pytest.mark.parametrize(("count", "kept"), [(1, 1), (2, 1), (3, 3)])
async def test_two_layer_rule(tmp_path: Path, count: int, kept: int) -> None:
    layers = [base_layer_files(f"layer {i}") for i in range(count)]
    base = make_base_layout(tmp_path / "base", layers=layers)
    image = await build_installer_image(_spec(tmp_path, base=base.layout), tmp_path / "out")
    assert [layer.digest for layer in image.layers[:-1]] == base.layer_digests[:kept]
    assert [layer.diff_id for layer in image.layers[:-1]] == base.diff_ids[:kept]
    history = _config(image)["history"]
    assert sum(1 for h in history if not h.get("empty_layer")) == kept + 1
    assert all("created" in h for h in history)


async def test_overlay_layer(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay", "arm64", "rpi_generic")
    overlay = OverlaySpec(tree, "rpi_generic", "configTxtAppend: foo\n")
    image = await build_installer_image(_spec(tmp_path, Arch.ARM64, overlay=overlay), tmp_path / "out")
    assert len(image.layers) == 3
    members = {m.name: m for m in read_layer(image.layers[2].path)}
    assert list(members) == [
        "overlay/artifacts/arm64",
        "overlay/artifacts/arm64/firmware",
        "overlay/artifacts/arm64/firmware/boot",
        "overlay/artifacts/arm64/firmware/boot/fixup.dat",
        "overlay/artifacts/arm64/u-boot",
        "overlay/artifacts/arm64/u-boot/u-boot.bin",
        "overlay/extra-options",
        "overlay/installers/default",
    ]
    assert members["overlay/artifacts/arm64"].isdir()
    assert members["overlay/installers/default"].mode == 0o755
    contents = layer_contents(image.layers[2].path)
    assert contents["overlay/extra-options"] == b"configTxtAppend: foo\n"
    assert contents["overlay/installers/default"] == b"\x7fELF overlay installer"
    assert _config(image)["history"][-1]["created_by"] == "image-factory: overlay rpi_generic"


async def test_overlay_without_options_writes_empty_map_and_keeps_symlinks(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay")
    (tree / "artifacts" / "arm64" / "link").symlink_to("/etc/passwd")
    image = await build_installer_image(
        _spec(tmp_path, Arch.ARM64, overlay=OverlaySpec(tree, "rpi_generic")), tmp_path / "out"
    )
    members = {m.name: m for m in read_layer(image.layers[2].path)}
    assert members["overlay/artifacts/arm64/link"].issym()
    assert members["overlay/artifacts/arm64/link"].linkname == "/etc/passwd"
    assert layer_contents(image.layers[2].path)["overlay/extra-options"] == b"{}\n"


async def test_overlay_without_installer_is_refused(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay")
    with pytest.raises(VerificationFailed, match="installers/rock5b"):
        await build_installer_image(_spec(tmp_path, overlay=OverlaySpec(tree, "rock5b")), tmp_path / "out")


@pytest.mark.parametrize("name", ["", "a/b", "..", "."])
def test_bad_overlay_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="overlay installer name"):
        OverlaySpec(tmp_path, name)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uki": None}, "needs uki and sd_boot"),
        ({"sd_boot": None, "use_sd_boot_for_uefi": False, "secureboot": True}, "needs uki and sd_boot"),
        ({"kernel": None, "use_sd_boot_for_uefi": False}, "needs kernel and initramfs"),
        ({"source_date_epoch": -1}, "negative"),
    ],
)
def test_bad_specs(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    spec = _spec(tmp_path)
    with pytest.raises(ValueError, match=message):
        replace(spec, **changes)


async def test_reproducible_digests(tmp_path: Path) -> None:
    tree = make_overlay_tree(tmp_path / "overlay")
    spec = _spec(tmp_path, overlay=OverlaySpec(tree, "rpi_generic", "a: 1\n"))
    one = await build_installer_image(spec, tmp_path / "one")
    two = await build_installer_image(spec, tmp_path / "two")
    assert one.manifest.digest == two.manifest.digest
    assert one.manifest.data == two.manifest.data
    later = await build_installer_image(replace(spec, source_date_epoch=EPOCH + 60), tmp_path / "three")
    assert later.manifest.digest != one.manifest.digest
    assert later.layers[0].digest == one.layers[0].digest  # the base layer is never rewritten


async def test_docker_typed_base_becomes_oci(tmp_path: Path) -> None:
    base = make_base_layout(tmp_path / "base", docker_types=True, history=False)
    image = await build_installer_image(_spec(tmp_path, base=base.layout), tmp_path / "out")
    assert image.layers[0].digest == base.layer_digests[0]
    assert image.layers[0].descriptor.media_type == mt.OCI_LAYER_GZIP
    assert [h["created_by"] for h in _config(image)["history"]] == [
        "base installer layer 1",
        "image-factory: boot assets usr/install/amd64",
    ]


async def test_base_given_as_files(tmp_path: Path) -> None:
    fake = make_base_layout(tmp_path / "base")
    layout = OciLayout(fake.layout)
    manifest = json.loads(layout.blob_path(layout.index_entries()[0].digest).read_bytes())
    base = BaseImage(
        config=layout.blob_path(manifest["config"]["digest"]),
        layers=tuple(Blob(Descriptor.from_json(d), layout.blob_path(d["digest"])) for d in manifest["layers"]),
    )
    from_files = await build_installer_image(_spec(tmp_path, base=base), tmp_path / "a")
    from_layout = await build_installer_image(_spec(tmp_path, base=fake.layout), tmp_path / "b")
    assert from_files.manifest.digest == from_layout.manifest.digest


async def test_base_for_another_arch_is_refused(tmp_path: Path) -> None:
    base = make_base_layout(tmp_path / "base", "arm64")
    with pytest.raises(VerificationFailed, match="base installer is arm64"):
        await build_installer_image(_spec(tmp_path, base=base.layout), tmp_path / "out")


async def test_base_with_wrong_diff_ids_is_refused(tmp_path: Path) -> None:
    base = make_base_layout(tmp_path / "base", layers=[base_layer_files(), [FakeFile("x", b"x")]])
    layout = OciLayout(base.layout)
    manifest = json.loads(layout.blob_path(layout.index_entries()[0].digest).read_bytes())
    manifest["layers"] = manifest["layers"][:1]
    data = json.dumps(manifest).encode()
    blob = layout.put_bytes(data, mt.OCI_MANIFEST)
    layout.write_index([blob.descriptor])
    with pytest.raises(VerificationFailed, match="diff_ids"):
        await build_installer_image(_spec(tmp_path, base=base.layout), tmp_path / "out")


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["rootfs"].update(diff_ids=["sha256:short"]),
        lambda c: c["rootfs"].update(diff_ids=[]),
        lambda c: c.pop("rootfs"),
        lambda c: c.update(config=["not", "a", "map"]),
    ],
)
async def test_malformed_base_config_is_refused(tmp_path: Path, change: Any) -> None:
    fake = make_base_layout(tmp_path / "base")
    layout = OciLayout(fake.layout)
    manifest = json.loads(layout.blob_path(layout.index_entries()[0].digest).read_bytes())
    config = json.loads(layout.blob_path(manifest["config"]["digest"]).read_bytes())
    change(config)
    base = BaseImage(
        config=layout.put_bytes(json.dumps(config).encode(), mt.OCI_CONFIG).path,
        layers=tuple(Blob(Descriptor.from_json(d), layout.blob_path(d["digest"])) for d in manifest["layers"]),
    )
    with pytest.raises(VerificationFailed, match="base installer config"):
        await build_installer_image(_spec(tmp_path, base=base), tmp_path / "out")


async def test_index_for_two_platforms_in_one_layout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    amd64 = await build_installer_image(_spec(tmp_path, Arch.AMD64), out)
    arm64 = await build_installer_image(_spec(tmp_path, Arch.ARM64), out)
    index = await write_installer_index([amd64, arm64], out, "v1.10.0")
    body = json.loads(index.data)
    assert body == {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {"mediaType": mt.OCI_MANIFEST, "digest": amd64.manifest.digest, "size": amd64.manifest.size,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": mt.OCI_MANIFEST, "digest": arm64.manifest.digest, "size": arm64.manifest.size,
             "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }  # fmt: skip
    (entry,) = OciLayout(out).index_entries()
    assert (entry.media_type, entry.digest, entry.annotations) == (mt.OCI_INDEX, index.digest, {REF_NAME: "v1.10.0"})


async def test_index_in_another_layout_links_every_blob(tmp_path: Path) -> None:
    amd64 = await build_installer_image(_spec(tmp_path, Arch.AMD64), tmp_path / "a")
    arm64 = await build_installer_image(_spec(tmp_path, Arch.ARM64), tmp_path / "b")
    index = await write_installer_index([amd64, arm64], tmp_path / "idx")
    layout = OciLayout(tmp_path / "idx")
    for image in (amd64, arm64):
        for blob in (*image.blobs(), Blob(image.manifest.descriptor(), image.manifest_path)):
            assert layout.blob_path(blob.digest).read_bytes() == blob.path.read_bytes()
    assert layout.read_blob(index.descriptor()) == index.data


async def test_index_refuses_duplicate_arches(tmp_path: Path) -> None:
    image = await build_installer_image(_spec(tmp_path), tmp_path / "out")
    with pytest.raises(ValueError, match="distinct arches"):
        await write_installer_index([image, image], tmp_path / "out")


def test_kept_base_layers_and_history_helpers(tmp_path: Path) -> None:
    blobs = [Blob(Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + str(i) * 64, 1), tmp_path) for i in range(3)]
    assert kept_base_layers(blobs[:2]) == (blobs[0],)
    assert kept_base_layers(blobs) == tuple(blobs)
    history = [{"created_by": "a"}, {"created_by": "env", "empty_layer": True}, {"created_by": "b", "created": "x"}]
    assert base_history(history, 1, "T") == [
        {"created": "T", "created_by": "a"},
        {"created": "T", "created_by": "env", "empty_layer": True},
    ]
    assert base_history(history, 2, "T") == [*(base_history(history, 1, "T") or []), history[2]]
    assert base_history(history, 3, "T") is None
    assert base_history(None, 1, "T") is None
    assert base_history(["x"], 0, "T") is None

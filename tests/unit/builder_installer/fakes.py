"""A small fake base installer (imager §1.2) as an OCI image layout, written without the code under test."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.shared.oci import media_types as mt

INSTALLER_BIN = b"#!/bin/sh\necho fake installer\n"
ENTRYPOINT = ["/bin/installer"]


@dataclass(frozen=True)
class FakeFile:
    path: str
    data: bytes | None = None  # None: a directory
    mode: int = 0o644
    link: str | None = None


def base_container_config(arch: str, tag: str = "v1.10.0") -> dict[str, Any]:
    return {
        "Entrypoint": ENTRYPOINT,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"TARGETARCH={arch}",
                f"VERSION={tag}"],
        "Labels": {"alpha.talos.dev/version": tag, "org.opencontainers.image.source": "https://github.com/siderolabs/talos"},
    }  # fmt: skip


def base_layer_files(marker: str = "base") -> list[FakeFile]:
    return [
        FakeFile("bin", link="usr/bin"),
        FakeFile("usr", None, 0o755),
        FakeFile("usr/bin", None, 0o755),
        FakeFile("usr/bin/installer", INSTALLER_BIN, 0o755),
        FakeFile("usr/bin/imager", link="installer"),
        FakeFile("etc", None, 0o755),
        FakeFile("etc/marker", marker.encode()),
    ]


def layer_tar(files: list[FakeFile]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            info = tarfile.TarInfo(f.path)
            info.mode, info.mtime = f.mode, 1700000000
            if f.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            elif f.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put(root: Path, data: bytes) -> str:
    digest = sha(data)
    (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest


@dataclass(frozen=True)
class FakeBase:
    layout: Path
    layer_digests: list[str]
    diff_ids: list[str]
    config: dict[str, Any]


def make_base_layout(
    root: Path,
    arch: str = "amd64",
    *,
    layers: list[list[FakeFile]] | None = None,
    nested_index: bool = False,
    docker_types: bool = False,
    history: bool = True,
) -> FakeBase:
    """A base installer layout: `layers` (default: one squashed layer with `usr/bin/installer`)."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers = layers if layers is not None else [base_layer_files()]
    layer_type = mt.DOCKER_LAYER_GZIP if docker_types else mt.OCI_LAYER_GZIP
    descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for files in layers:
        tar = layer_tar(files)
        blob = gzip.compress(tar, mtime=0)
        descriptors.append({"mediaType": layer_type, "digest": _put(root, blob), "size": len(blob)})
        diff_ids.append(sha(tar))
    config: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "created": "2025-01-01T00:00:00Z",
        "config": base_container_config(arch),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if history:
        config["history"] = [
            *({"created_by": f"COPY layer {i}"} for i in range(len(layers))),
            {"created_by": 'ENTRYPOINT ["/bin/installer"]', "empty_layer": True},
        ]
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker_types else mt.OCI_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG if docker_types else mt.OCI_CONFIG, "digest": _put(root, config_bytes),
                   "size": len(config_bytes)},
        "layers": descriptors,
    }  # fmt: skip
    manifest_bytes = json.dumps(manifest).encode()
    entry: dict[str, Any] = {"mediaType": manifest["mediaType"], "digest": _put(root, manifest_bytes),
                             "size": len(manifest_bytes)}  # fmt: skip
    if nested_index:
        other = dict(entry, platform={"architecture": "s390x", "os": "linux"})
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                 "manifests": [other, dict(entry, platform={"architecture": arch, "os": "linux"})]}  # fmt: skip
        index_bytes = json.dumps(index).encode()
        entry = {"mediaType": mt.OCI_INDEX, "digest": _put(root, index_bytes), "size": len(index_bytes)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": "v1.10.0"}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return FakeBase(root, [str(d["digest"]) for d in descriptors], diff_ids, config)


def boot_files(root: Path) -> dict[str, Path]:
    """Stand-ins for the UKI, sd-boot, kernel and initramfs (content only matters for byte checks)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "uki": b"MZ fake uki " * 1000,
        "sd_boot": b"MZ fake systemd-boot",
        "kernel": b"fake bzImage " * 100,
        "initramfs": b"\x28\xb5\x2f\xfd fake zstd initramfs",
    }
    out = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        out[name] = root / name
    return out


def make_overlay_tree(root: Path, arch: str = "arm64", name: str = "rpi_generic") -> Path:
    (root / "artifacts" / arch / "firmware" / "boot").mkdir(parents=True)
    (root / "artifacts" / arch / "firmware" / "boot" / "fixup.dat").write_bytes(b"fixup")
    (root / "artifacts" / arch / "u-boot").mkdir(parents=True)
    (root / "artifacts" / arch / "u-boot" / "u-boot.bin").write_bytes(b"uboot")
    (root / "installers").mkdir()
    (root / "installers" / name).write_bytes(b"\x7fELF overlay installer")
    (root / "installers" / name).chmod(0o755)
    (root / "profiles").mkdir()
    (root / "profiles" / f"{name}.yaml").write_text("arch: arm64\n")
    return root


def read_layer(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path, mode="r:gz") as tar:
        return tar.getmembers()


def layer_contents(path: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name] = handle.read()
    return out

"""Virtual extensions (imager spec §1.4, factory spec §7.6): manifest bytes and tar layout."""

from __future__ import annotations

import hashlib
import io
import tarfile

from services.builder.assets.extension_manifest import parse_manifest
from services.builder.assets.virtual_extensions import (
    STATE_SELINUX_LABEL,
    SchematicExtension,
    embedded_config_tar,
    factory_author,
    schematic_tar,
)
from services.builder.steps.squashfs import SELINUX_PAX
from services.schematic.canonical import canonical_yaml
from services.schematic.ids import schematic_id
from services.schematic.model import Customization, Schematic

SCHEMATIC = Schematic(customization=Customization(extra_kernel_args=("noapic", "nolapic")))
ID = "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"  # factory spec §6.3

EXPECTED_MANIFEST = (
    "version: v1alpha1\n"
    "metadata:\n"
    "    name: schematic\n"
    f"    version: {ID}\n"
    "    author: Image Factory (https://factory.talos.dev)\n"
    "    description: Virtual extension which specifies the schematic of the image built with schematic.\n"
    "    compatibility:\n"
    "        talos:\n"
    "            version: '>= 1.0.0'\n"
    "    extraInfo: |\n"
    "        customization:\n"
    "            extraKernelArgs:\n"
    "                - noapic\n"
    "                - nolapic\n"
).encode()


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        result = []
        for member in tar:
            f = tar.extractfile(member)
            result.append((member, f.read() if f is not None else b""))
        return result


def _check_go_ending(data: bytes) -> None:
    # Go's tar.Writer.Close: two zero blocks, no padding to a 10 KiB record.
    assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)
    assert data[:-1024].rstrip(b"\0") != b"" and len(data) < 10240


def test_schematic_tar_with_extra_info() -> None:
    assert schematic_id(SCHEMATIC) == ID
    ext = SchematicExtension(ID, factory_author("https://factory.talos.dev"), canonical_yaml(SCHEMATIC))
    data = schematic_tar(ext)
    _check_go_ending(data)
    members = _members(data)
    assert [(m.name, m.type, m.mode) for m, _ in members] == [
        ("manifest.yaml", tarfile.REGTYPE, 0o644),
        ("rootfs", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local/share", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local/share/schematic", tarfile.DIRTYPE, 0o755),
        (f"rootfs/usr/local/share/schematic/{ID}", tarfile.REGTYPE, 0o644),
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m, _ in members} == {(0, 0, "", "", 0)}
    assert members[0][1] == EXPECTED_MANIFEST
    assert members[-1][0].size == 0
    assert parse_manifest(EXPECTED_MANIFEST).metadata.extra_info == canonical_yaml(SCHEMATIC)


def test_schematic_tar_before_1_7_has_no_extra_info() -> None:
    data = schematic_tar(SchematicExtension(ID, factory_author("http://127.0.0.1:8080/", enterprise=True)))
    manifest = _members(data)[0][1]
    assert b"extraInfo" not in manifest
    assert b"    author: Image Factory Enterprise (http://127.0.0.1:8080/)\n" in manifest


def test_embedded_config_tar() -> None:
    config = b"apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-33\n"
    data = embedded_config_tar(config)
    _check_go_ending(data)
    members = _members(data)
    assert [(m.name, m.type, m.mode) for m, _ in members] == [
        ("manifest.yaml", tarfile.REGTYPE, 0o644),
        ("rootfs", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local/etc", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local/etc/talos", tarfile.DIRTYPE, 0o755),
        ("rootfs/usr/local/etc/talos/config.yaml", tarfile.REGTYPE, 0o400),
    ]
    info, content = members[-1]
    assert content == config
    assert info.pax_headers == {SELINUX_PAX: STATE_SELINUX_LABEL}
    assert [m.name for m, _ in members if m.pax_headers] == ["rootfs/usr/local/etc/talos/config.yaml"]
    expected = (
        "version: v1alpha1\n"
        "metadata:\n"
        "    name: embedded-config\n"
        f"    version: {hashlib.sha256(config).hexdigest()}\n"
        "    author: Imager\n"
        "    description: Virtual extension which embeds the machine configuration.\n"
        "    compatibility:\n"
        "        talos:\n"
        "            version: '>= 1.0.0'\n"
    ).encode()
    assert members[0][1] == expected

"""Virtual extensions as plain tar streams (imager spec §1.4; factory spec §7.6).

* schematic (Image Factory): `manifest.yaml` naming the schematic ID, empty marker file
  `rootfs/usr/local/share/schematic/<ID>`; the schematic YAML goes to `extraInfo` for Talos ≥1.7.
* embedded-config (Talos imager, appended last): the machine config at
  `rootfs/usr/local/etc/talos/config.yaml`, mode 0400, with a PAX SELinux label that ends up as the
  file's `security.selinux` xattr in the squashfs (§4.3).

Headers are those Go's `archive/tar` writes for these entries: uid/gid 0, empty user/group names, mtime
0 (the zero `time.Time` is written as the epoch), and the stream ends with two zero blocks, not
padded to a 10 KiB record. Python still adds a `/` to directory names; the tar is only unpacked.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass

from services.builder.assets.extension_manifest import MANIFEST_VERSION, Manifest, Metadata, manifest_yaml
from services.builder.steps.squashfs import SELINUX_PAX

SCHEMATIC_EXTENSION = "schematic"
SCHEMATIC_DESCRIPTION = "Virtual extension which specifies the schematic of the image built with schematic."
EMBEDDED_CONFIG_EXTENSION = "embedded-config"
EMBEDDED_CONFIG_DESCRIPTION = "Virtual extension which embeds the machine configuration."
# Talos `constants.StateSelinuxLabel`.
STATE_SELINUX_LABEL = "system_u:object_r:system_state_t:s0"
_ANY_TALOS = ">= 1.0.0"


@dataclass(frozen=True)
class SchematicExtension:
    """Inputs of the schematic virtual extension.

    `author` is `Image Factory (<external URL>)` (`Image Factory Enterprise (…)` for enterprise),
    see `factory_author`; `schematic_yaml` is the canonical schematic YAML, or "" below Talos 1.7
    (`SupportsOverlay`), which leaves `extraInfo` out."""

    schematic_id: str
    author: str
    schematic_yaml: str = ""
    description: str = SCHEMATIC_DESCRIPTION


def factory_author(external_url: str, *, enterprise: bool = False) -> str:
    """Talos parses this back as `<flavor> (<apiURL>)` at runtime (§1.4)."""
    return f"Image Factory{' Enterprise' if enterprise else ''} ({external_url})"


def _entry(name: str, kind: bytes, mode: int, data: bytes = b"", pax: dict[str, str] | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = len(data)
    info.mtime = 0
    info.uname = info.gname = ""
    if pax:
        info.pax_headers = pax
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    else:
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    return header + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def _parents(path: str) -> list[str]:
    """`a/b/c` → `a`, `a/b`, `a/b/c`."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _finish(entries: list[bytes]) -> bytes:
    return b"".join(entries) + b"\0" * (2 * tarfile.BLOCKSIZE)


def schematic_manifest(ext: SchematicExtension) -> Manifest:
    return Manifest(
        MANIFEST_VERSION,
        Metadata(
            name=SCHEMATIC_EXTENSION,
            version=ext.schematic_id,
            author=ext.author,
            description=ext.description,
            compatibility=_ANY_TALOS,
            extra_info=ext.schematic_yaml,
        ),
    )


def schematic_tar(ext: SchematicExtension) -> bytes:
    """factory §7.6, entries in this order."""
    entries = [_entry("manifest.yaml", tarfile.REGTYPE, 0o644, manifest_yaml(schematic_manifest(ext)))]
    for path in _parents("rootfs/usr/local/share/schematic"):
        entries.append(_entry(path, tarfile.DIRTYPE, 0o755))
    entries.append(_entry(f"rootfs/usr/local/share/schematic/{ext.schematic_id}", tarfile.REGTYPE, 0o644))
    return _finish(entries)


def embedded_config_manifest(config: bytes) -> Manifest:
    return Manifest(
        MANIFEST_VERSION,
        Metadata(
            name=EMBEDDED_CONFIG_EXTENSION,
            version=hashlib.sha256(config).hexdigest(),
            author="Imager",
            description=EMBEDDED_CONFIG_DESCRIPTION,
            compatibility=_ANY_TALOS,
        ),
    )


def embedded_config_tar(config: bytes) -> bytes:
    """§1.4 embedded-config: the config file is 0400 and carries the STATE SELinux label."""
    entries = [_entry("manifest.yaml", tarfile.REGTYPE, 0o644, manifest_yaml(embedded_config_manifest(config)))]
    for path in _parents("rootfs/usr/local/etc/talos"):
        entries.append(_entry(path, tarfile.DIRTYPE, 0o755))
    entries.append(
        _entry(
            "rootfs/usr/local/etc/talos/config.yaml",
            tarfile.REGTYPE,
            0o400,
            config,
            {SELINUX_PAX: STATE_SELINUX_LABEL},
        )
    )
    return _finish(entries)

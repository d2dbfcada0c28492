"""Content of the non-extension images: imager, installer(-base), catalogs, overlay, talosctl-all.

Only files and configs here; `publish.py` turns them into layers and pushes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .extensions import AUTHOR
from .layers import Entry
from .model import DemoOverlay, PublishedExtension, TalosVersion

TALOS_SOURCE = "https://github.com/siderolabs/talos"
TALOSCTL_FILES = ("talosctl-darwin-arm64", "talosctl-linux-amd64", "talosctl-linux-arm64", "talosctl-windows-amd64.exe")


def imager_entries(assets: Mapping[str, bytes]) -> list[Entry]:
    """`usr/install/<arch>/…` for both arches (imager spec §1.1) and depmod's extra-modules config."""
    entries = [Entry.file(path, data) for path, data in sorted(assets.items())]
    entries.append(Entry.file("etc/modules.d/10-extra-modules.conf", b"search extras built-in\n"))
    return entries


def imager_config(version: TalosVersion) -> dict[str, Any]:
    # No Entrypoint: the demo imager has no imager binary; the factory only reads usr/install.
    return {
        "Labels": {"alpha.talos.dev/version": version.tag, "org.opencontainers.image.source": TALOS_SOURCE},
    }


def _installer_script(version: TalosVersion) -> bytes:
    # Runtime contract (imager spec §9): `--help` exits 0; `install …` reads its flags and the
    # machine config on stdin. The demo only reports what it was asked to do.
    return (
        "#!/bin/sh\n"
        f"# Image Factory demo installer for Talos {version.tag}; it installs nothing.\n"
        'case "${1:-}" in\n'
        '  --help|-h|help) echo "usage: installer install --disk=<dev> --platform=<p> [...]"; exit 0 ;;\n'
        '  install) shift; echo "demo installer ${VERSION:-?} (${TARGETARCH:-?}): install $*"\n'
        "    cat >/dev/null; exit 0 ;;\n"
        '  *) echo "unknown command: ${1:-}" >&2; exit 1 ;;\n'
        "esac\n"
    ).encode()


def installer_entries(version: TalosVersion) -> list[Entry]:
    """A tiny FHS skeleton (imager spec §1.2). ≥ 1.10 keeps binaries in /usr/bin with `bin -> usr/bin`;
    the older `installer` image has a real `/bin/installer` (factory spec §9.3 checks either path)."""
    bindir = "usr/bin" if version.at_least(1, 10) else "bin"
    entries = [
        Entry.file("etc/os-release", f'NAME="Talos"\nID=talos\nVERSION_ID={version.tag}\n'.encode()),
        Entry.executable(f"{bindir}/installer", _installer_script(version)),
        Entry.symlink(f"{bindir}/imager", "installer"),
        *(Entry.directory(d) for d in ("dev", "proc", "sys", "usr/lib", "var")),
        Entry.directory("tmp", 0o1777),
    ]
    if bindir == "usr/bin":
        entries.append(Entry.symlink("bin", "usr/bin"))
    return entries


def installer_config(version: TalosVersion, arch: str) -> dict[str, Any]:
    return {
        "Entrypoint": ["/bin/installer"],
        "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"TARGETARCH={arch}",
            f"VERSION={version.tag}",
        ],
        "Labels": {"alpha.talos.dev/version": version.tag, "org.opencontainers.image.source": TALOS_SOURCE},
    }


def extensions_catalog_entries(extensions: Sequence[PublishedExtension]) -> list[Entry]:
    """`image-digests` and `descriptions.yaml` keyed by the full line (factory spec §7.3)."""
    lines = sorted(e.catalog_line for e in extensions)
    descriptions = {e.catalog_line: {"author": AUTHOR, "description": e.description} for e in extensions}
    return [
        Entry.file("image-digests", "".join(f"{line}\n" for line in lines).encode()),
        Entry.file("descriptions.yaml", yaml.safe_dump(dict(sorted(descriptions.items())), sort_keys=False).encode()),
    ]


def overlays_catalog_entries(registry: str, namespace: str, overlays: Sequence[tuple[DemoOverlay, str]]) -> list[Entry]:
    """`overlays.yaml` (factory spec §7.4): one entry per (overlay, index digest), in that order."""
    doc = {
        "overlays": [
            {"name": overlay.name, "image": f"{registry}/{namespace}/{overlay.image}:{overlay.tag}", "digest": digest}
            for overlay, digest in overlays
        ]
    }
    return [Entry.file("overlays.yaml", yaml.safe_dump(doc, sort_keys=False).encode())]


def talosctl_entries(version: TalosVersion) -> list[Entry]:
    """Root files `talosctl-<os>-<arch>[.exe]` (factory spec §7.5): scripts that print the version."""
    entries = []
    for name in TALOSCTL_FILES:
        target = name.removeprefix("talosctl-").removesuffix(".exe")
        script = f"#!/bin/sh\necho 'talosctl {version.tag} ({target}, Image Factory demo)'\n"
        entries.append(Entry.executable(name, script.encode()))
    return entries

"""The demo system extensions (imager spec §1.3): flattened fs = `manifest.yaml` + `rootfs/`.

Each exists once per Talos version, tagged `<version>-<talos tag>` like upstream (`metadata.version`
equals the tag). Paths follow the version: `/usr/lib/{firmware,modules}` from 1.10, `/lib/...` before
(imager spec §2.5). Each one exercises a builder path:

* demo-firmware: firmware moved from the extension into the initramfs (imager spec §4.4);
* amd-ucode: `amd-ucode/microcode_amd*.bin` → uncompressed `kernel/x86/microcode/AuthenticAMD.bin`
  (fake bytes: the demo kernel has `CONFIG_MICROCODE` off and never parses them);
* demo-kmod: a real `dummy.ko` from the demo kernel under `<lib>/modules/<kver>/extras/` → the
  modules.dep extension (§4.5). Debian 12 ships modules uncompressed, hence `.ko`, not `.ko.xz`;
* demo-tools: a plain file under `/usr/local/bin`;
* demo-legacy: compatibility `< v1.12.0`. It is listed in every catalog on purpose, so that asking
  for it on 1.12+ runs into the imager's constraint check instead of a missing catalog entry.

arm64 images carry the same layer: the amd64 `dummy.ko` is a placeholder there, like every arm64
boot asset of the demo.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import yaml

from .kernel import KernelAssets
from .layers import Entry
from .model import TalosVersion

AUTHOR = "Image Factory demo"


@dataclass(frozen=True)
class ExtensionSpec:
    name: str
    base_version: str
    description: str
    compatibility: str

    def version(self, talos: TalosVersion) -> str:
        return f"{self.base_version}-{talos.tag}"


SPECS = (
    ExtensionSpec("demo-firmware", "20260101", "Demo firmware blobs for a fictional NIC.", ">= v1.0.0"),
    ExtensionSpec("demo-kmod", "1.0.0", "The dummy network driver as an out-of-tree module.", ">= v1.0.0"),
    ExtensionSpec("demo-tools", "0.3.0", "A demo command in /usr/local/bin.", ">= v1.0.0"),
    ExtensionSpec("demo-legacy", "0.1.0", "Only for Talos before 1.12.", "< v1.12.0"),
    ExtensionSpec("amd-ucode", "20260101", "Fake AMD CPU microcode (the demo kernel never loads it).", ">= v1.0.0"),
)


def _blob(label: str, size: int) -> bytes:
    """Deterministic filler bytes that differ per label."""
    out = b""
    seed = label.encode()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return out[:size]


def manifest_yaml(spec: ExtensionSpec, talos: TalosVersion) -> bytes:
    doc = {
        "version": "v1alpha1",
        "metadata": {
            "name": spec.name,
            "version": spec.version(talos),
            "author": AUTHOR,
            "description": spec.description,
            "compatibility": {"talos": {"version": spec.compatibility}},
        },
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def rootfs_entries(spec: ExtensionSpec, talos: TalosVersion, kernel: KernelAssets) -> list[Entry]:
    lib = f"rootfs/{talos.lib_prefix}"
    if spec.name == "demo-firmware":
        return [
            Entry.file(f"{lib}/firmware/demo/demo-nic.bin", _blob("demo-nic", 4096)),
            Entry.file(f"{lib}/firmware/demo/LICENSE.demo", b"Demo firmware; no rights reserved.\n"),
        ]
    if spec.name == "amd-ucode":
        return [Entry.file(f"{lib}/firmware/amd-ucode/microcode_amd_fam17h.bin", _blob("amd-ucode", 512))]
    if spec.name == "demo-kmod":
        ko = kernel.kmod.rsplit("/", 1)[-1]
        data = (kernel.modules / kernel.kmod).read_bytes()
        return [Entry.file(f"{lib}/modules/{kernel.kver}/extras/{ko}", data)]
    if spec.name == "demo-tools":
        script = f"#!/bin/sh\necho 'demo-tool {spec.version(talos)}'\n".encode()
        return [Entry.executable("rootfs/usr/local/bin/demo-tool", script)]
    if spec.name == "demo-legacy":
        return [Entry.file("rootfs/usr/local/share/demo-legacy/README", b"Talos < 1.12 only.\n")]
    raise KeyError(spec.name)


def extension_entries(spec: ExtensionSpec, talos: TalosVersion, kernel: KernelAssets) -> list[Entry]:
    return [Entry.file("manifest.yaml", manifest_yaml(spec, talos)), *rootfs_entries(spec, talos, kernel)]

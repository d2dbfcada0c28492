"""The demo SBC overlay image `sbc-demo` (imager spec §1.5, §10), published once for all versions.

Layout: `profiles/demo_board.yaml` (a base profile, imager spec §2.1), `installers/demo_board` (a
shell script honouring the get-options/install contract; real overlays ship a static Go binary) and
`artifacts/arm64/{u-boot,dtb}/…` (placeholder bytes). The profile leaves the bootloader to the
defaults (sd-boot for arm64 ≥ 1.10, GRUB before), so the factory can build it on a host without arm64
GRUB modules; the overlay install step itself only runs for GRUB images (imager spec §10).
"""

from __future__ import annotations

from importlib import resources

import yaml

from .layers import Entry
from .model import OVERLAY_NAME

# MinRAWDiskSize (imager spec §2.3): the smallest disk the imager accepts, as rock5b's profile uses.
DISK_SIZE = 1_306_525_696


def profile_yaml() -> bytes:
    doc = {
        "arch": "arm64",
        "platform": "metal",
        "secureboot": False,
        "output": {"kind": "image", "outFormat": ".xz", "imageOptions": {"diskSize": DISK_SIZE, "diskFormat": "raw"}},
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def overlay_entries() -> list[Entry]:
    installer = resources.files(__package__).joinpath("overlay_installer.sh").read_bytes()
    return [
        Entry.file(f"profiles/{OVERLAY_NAME}.yaml", profile_yaml()),
        Entry.executable(f"installers/{OVERLAY_NAME}", installer),
        Entry.file(f"artifacts/arm64/u-boot/{OVERLAY_NAME}/u-boot.bin", b"DEMO-U-BOOT\n" + bytes(4084)),
        Entry.file("artifacts/arm64/dtb/demo/board.dtb", bytes.fromhex("d00dfeed") + b"\0" * 60),
    ]

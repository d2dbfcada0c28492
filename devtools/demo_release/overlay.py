"""The demo SBC overlay image `sbc-demo` (imager spec §1.5, §10), published once for all versions.

Layout: `profiles/demo_board.yaml` (a base profile, imager spec §2.1), `installers/demo_board` (a
shell script honouring the get-options/install contract; real overlays ship a static Go binary) and
`artifacts/arm64/{u-boot,dtb}/…` (marker bytes). What the installer does, so tests can check it:

* `get-options`: kernel args `console=<option console, default ttyAMA0,115200>` and `demo.board=1`;
  partition offset `PARTITION_OFFSET` LBAs (the first partition moves to 2 MiB);
* `install`: `u-boot.bin` (`UBOOT`) written at byte `UBOOT_OFFSET` of the raw image, inside that
  reserved space; on the ESP (`<mountPrefix>/boot/EFI/`): `dtb/demo/board.dtb` (`DTB`), `u-boot.bin`
  and `config.txt` (`CONFIG_TXT`, then the extra option `configTxtAppend`, as sbc-raspberrypi does).

The profile leaves the bootloader to the defaults (sd-boot for arm64 ≥ 1.10, GRUB before), so the
factory can build it on a host without arm64 GRUB modules; the factory runs the overlay install step
for sd-boot images too (see services/builder/assets/disk.py).

Any change here changes the layer digest, so the next publish (every `make demo` and test session)
pushes a new `sbc-demo` index and points the `overlays` catalogs at it; the factory keys assets by it.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import yaml

from .layers import Entry
from .model import OVERLAY_NAME

# MinRAWDiskSize (imager spec §2.3): the smallest disk the imager accepts, as rock5b's profile uses.
DISK_SIZE = 1_306_525_696
PARTITION_OFFSET: Final = 2048  # LBAs skipped before the primary GPT entries (get-options)
UBOOT_OFFSET: Final = 64 * 512  # where `install` writes u-boot.bin (rock5b's u-boot-rockchip.bin offset)
UBOOT: Final = b"DEMO-U-BOOT\n" + bytes(i % 251 for i in range(4096 - 12))
DTB: Final = bytes.fromhex("d00dfeed") + b"demo_board device tree\n".ljust(60, b"\0")
CONFIG_TXT: Final = (
    "# demo_board boot configuration, written by the sbc-demo overlay installer\n"
    "arm_64bit=1\n"
    "kernel=u-boot.bin\n"
    "device_tree=dtb/demo/board.dtb\n"
)


def profile_yaml() -> bytes:
    doc = {
        "arch": "arm64",
        "platform": "metal",
        "secureboot": False,
        "output": {"kind": "image", "outFormat": ".xz", "imageOptions": {"diskSize": DISK_SIZE, "diskFormat": "raw"}},
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def installer_script() -> bytes:
    return resources.files(__package__).joinpath("overlay_installer.sh").read_bytes()


def overlay_entries() -> list[Entry]:
    return [
        Entry.file(f"profiles/{OVERLAY_NAME}.yaml", profile_yaml()),
        Entry.executable(f"installers/{OVERLAY_NAME}", installer_script()),
        Entry.file(f"artifacts/arm64/u-boot/{OVERLAY_NAME}/u-boot.bin", UBOOT),
        Entry.file("artifacts/arm64/dtb/demo/board.dtb", DTB),
    ]

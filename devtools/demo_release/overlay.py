"""The demo SBC overlay images (imager spec §1.5, §10), each published once for all versions.

One builder for every `model.OVERLAYS` entry: `sbc-demo` (overlay `demo_board`) and, so that the web UI's
default board works in the demo, `sbc-raspberrypi` (overlay `rpi_generic`, as in the real release).
Layout of the overlay `<name>`: `profiles/<name>.yaml` (a base profile, imager spec §2.1),
`installers/<name>` (a shell script honouring the get-options/install contract; real overlays ship a
static Go binary) and `artifacts/arm64/{u-boot/<name>,dtb/demo}/…` (marker bytes). What the installer
does, so tests can check it:

* `get-options`: kernel args `console=<option console, default ttyAMA0,115200>` and `demo.board=1`;
  partition offset `PARTITION_OFFSET` LBAs (the first partition moves to 2 MiB);
* `install`: `u-boot.bin` (`UBOOT`) written at byte `UBOOT_OFFSET` of the raw image, inside that
  reserved space; on the ESP (`<mountPrefix>/boot/EFI/`): `dtb/demo/board.dtb` (`DTB`), `u-boot.bin`
  and `config.txt` (`config_txt()`, then the extra option `configTxtAppend`, as sbc-raspberrypi does).

`DTB` and `CONFIG_TXT` are `demo_board`'s; the DTB and the first line of `config.txt` name the overlay,
so a test can tell which overlay image a disk image was built with.

The profile leaves the bootloader to the defaults (sd-boot for arm64 ≥ 1.10, GRUB before), so the
factory can build it on a host without arm64 GRUB modules; the factory runs the overlay install step
for sd-boot images too (see services/builder/assets/disk.py).

Any change here changes the layer digests (layers are cached by content), so the next publish (every
`make demo` and test session) pushes new overlay indexes and points the `overlays` catalogs at them; the
factory keys assets by those digests.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

import yaml

from .layers import Entry
from .model import DEMO_BOARD, DemoOverlay

# MinRAWDiskSize (imager spec §2.3): the smallest disk the imager accepts, as rock5b's profile uses.
DISK_SIZE = 1_306_525_696
PARTITION_OFFSET: Final = 2048  # LBAs skipped before the primary GPT entries (get-options)
UBOOT_OFFSET: Final = 64 * 512  # where `install` writes u-boot.bin (rock5b's u-boot-rockchip.bin offset)
UBOOT: Final = b"DEMO-U-BOOT\n" + bytes(i % 251 for i in range(4096 - 12))


def dtb(overlay: DemoOverlay) -> bytes:
    return bytes.fromhex("d00dfeed") + f"{overlay.name} device tree\n".encode().ljust(60, b"\0")


def config_txt(overlay: DemoOverlay) -> str:
    """What `install` writes to config.txt before `configTxtAppend` (mirrors overlay_installer.sh)."""
    return (
        f"# {overlay.name} boot configuration, written by the {overlay.image} overlay installer\n"
        "arm_64bit=1\n"
        "kernel=u-boot.bin\n"
        "device_tree=dtb/demo/board.dtb\n"
    )


DTB: Final = dtb(DEMO_BOARD)
CONFIG_TXT: Final = config_txt(DEMO_BOARD)


def profile_yaml() -> bytes:
    doc = {
        "arch": "arm64",
        "platform": "metal",
        "secureboot": False,
        "output": {"kind": "image", "outFormat": ".xz", "imageOptions": {"diskSize": DISK_SIZE, "diskFormat": "raw"}},
    }
    return yaml.safe_dump(doc, sort_keys=False).encode()


def installer_script(overlay: DemoOverlay = DEMO_BOARD) -> bytes:
    template = resources.files(__package__).joinpath("overlay_installer.sh").read_text()
    return template.replace("@NAME@", overlay.name).replace("@IMAGE@", overlay.image).encode()


def overlay_entries(overlay: DemoOverlay = DEMO_BOARD) -> list[Entry]:
    """The files of the overlay image `siderolabs/<overlay.image>` (one layer, both arches)."""
    return [
        Entry.file(f"profiles/{overlay.name}.yaml", profile_yaml()),
        Entry.executable(f"installers/{overlay.name}", installer_script(overlay)),
        Entry.file(f"artifacts/arm64/u-boot/{overlay.name}/u-boot.bin", UBOOT),
        Entry.file("artifacts/arm64/dtb/demo/board.dtb", dtb(overlay)),
    ]

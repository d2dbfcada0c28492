"""An SBC disk image with the demo overlay's real installer, read back with real tools (imager spec §7, §10).

The demo release's `installers/demo_board` script runs exactly as the builder runs it (`get-options`, then
`install` on the bare sparse image); sfdisk/sgdisk read the GPT, mtools the ESP, `dd` the firmware offset.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest

from devtools.demo_release import overlay as demo
from devtools.demo_release.layers import Entry
from devtools.demo_release.model import OVERLAY_NAME
from services.builder.assets.disk import DiskQuirks, DiskSpec, build_disk
from services.builder.enums import Arch, Bootloader
from services.builder.steps import meta_adv, overlay
from services.builder.steps.gpt import ESP_TYPE, guid_from_label
from services.builder.steps.overlay import OverlayInstaller
from services.catalog.versions import Version
from services.schematic.canonical import options_yaml
from services.schematic.model import MetaValue, OptionMap
from tests.support.real_tools import require_tools

pytestmark = pytest.mark.tools

MIB = 1024 * 1024
DISK_SIZE = 2246 * MIB  # metal arm64 ≥ 1.11 (§7.3 worked layouts)
OPTIONS = OptionMap({"console": "ttyS2,1500000", "configTxtAppend": "dtoverlay=demo-fan\ngpu_mem=64"})
USER_META = MetaValue(0x0C, "sbc")


def _run(*argv: str | Path) -> str:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, check=True).stdout


def _unpack_overlay(root: Path) -> Path:
    """The demo `sbc-demo` image's files, as the builder's image store flattens them (modes kept)."""
    for entry in demo.overlay_entries():
        assert isinstance(entry, Entry) and entry.data is not None
        path = root / entry.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry.data)
        path.chmod(entry.mode)
    return root


@pytest.fixture(scope="module")
def sbc_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DiskSpec]:
    require_tools("sh", "awk", "dd", "mkfs.vfat", "mcopy", "mmd", "mdir", "mtype", "sfdisk", "sgdisk")
    work = tmp_path_factory.mktemp("sbc")
    root = _unpack_overlay(work / "sbc-demo")
    installer = root / "installers" / OVERLAY_NAME
    extra = options_yaml(OPTIONS)
    options = asyncio.run(overlay.get_options(installer, extra))
    step = OverlayInstaller(installer, root / "artifacts", options, extra)
    for name in ("uki.efi", "sd-boot.efi"):  # sd-boot staging only copies them (§7.5)
        (work / name).write_bytes(b"MZ" + name.encode())
    spec = DiskSpec(
        Arch.ARM64, "v1.12.1", Bootloader.SD_BOOT, "console=ttyS2,1500000", DISK_SIZE,
        DiskQuirks.for_version(Version(1, 12, 1)), uki=work / "uki.efi", sd_boot=work / "sd-boot.efi",
        meta_values=(USER_META,), overlay=step,
    )  # fmt: skip
    (work / "build").mkdir()
    out = work / "metal-arm64.raw"
    asyncio.run(build_disk(spec, work / "build", out))
    return out, spec


def test_get_options_answer_drives_the_spec(sbc_image: tuple[Path, DiskSpec]) -> None:
    _, spec = sbc_image
    assert spec.overlay is not None
    assert spec.overlay.options == overlay.OverlayOptions(
        "demo_board", ("console=ttyS2,1500000", "demo.board=1"), demo.PARTITION_OFFSET
    )


def test_layout_per_sfdisk_and_sgdisk(sbc_image: tuple[Path, DiskSpec]) -> None:
    """§10: 2048 skipped LBAs put the primary entries at LBA 2050 and EFI at the next 1 MiB boundary."""
    raw, _ = sbc_image
    dump = _run("sfdisk", "-d", raw)
    assert "label: gpt" in dump and "first-lba: 4096" in dump
    assert f"label-id: {guid_from_label('talos-image-disk')}".upper() in dump.upper()
    parts = re.findall(r'start=\s*(\d+), size=\s*(\d+), type=([0-9A-F-]+), uuid=([0-9A-F-]+), name="(\w+)"', dump)
    esp_sectors = (100 + 1 + 2000) * MIB // 512  # the sd-boot ESP: 100 + 1 + bootSize MiB (§7.3)
    assert parts == [
        ("4096", str(esp_sectors), str(ESP_TYPE).upper(), str(guid_from_label("EFI")).upper(), "EFI"),
        (str(4096 + esp_sectors), "2048", "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
         str(guid_from_label("META")).upper(), "META"),
    ]  # fmt: skip
    table = _run("sgdisk", "-p", raw)
    assert re.search(r"First usable sector is 4096,", table), table
    assert re.search(r"^\s+1\s+4096\s+\d+\s+.*EF00\s+EFI$", table, re.M), table
    verified = subprocess.run(["sgdisk", "-v", str(raw)], capture_output=True, text=True, timeout=60)
    assert "No problems found" in verified.stdout, verified.stdout


def test_uboot_blob_at_its_offset(sbc_image: tuple[Path, DiskSpec]) -> None:
    raw, _ = sbc_image
    blob = subprocess.run(
        ["dd", f"if={raw}", "bs=512", f"skip={demo.UBOOT_OFFSET // 512}", f"count={len(demo.UBOOT) // 512}"],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    assert blob == demo.UBOOT
    with raw.open("rb") as f:  # nothing else between the PMBR/GPT header and the entries
        f.seek(1024)
        before = f.read(demo.UBOOT_OFFSET - 1024)
        f.seek(demo.UBOOT_OFFSET + len(demo.UBOOT))
        after = f.read(2050 * 512 - demo.UBOOT_OFFSET - len(demo.UBOOT))
    assert before == bytes(len(before)) and after == bytes(len(after))


def test_overlay_files_on_the_esp(sbc_image: tuple[Path, DiskSpec], tmp_path: Path) -> None:
    raw, _ = sbc_image
    esp = f"{raw}@@{4096 * 512}"
    top = _run("mdir", "-/", "-b", "-i", esp, "::").split()
    assert {"::/config.txt", "::/u-boot.bin", "::/dtb/demo/board.dtb", "::/EFI/Linux/Talos-v1.12.1.efi"} <= set(top)
    assert {"::/loader/loader.conf", "::/EFI/boot/BOOTAA64.efi"} <= set(top)
    assert _run("mtype", "-i", esp, "::/config.txt") == demo.CONFIG_TXT + "dtoverlay=demo-fan\ngpu_mem=64\n"
    dtb = tmp_path / "board.dtb"
    _run("mcopy", "-i", esp, "::/dtb/demo/board.dtb", dtb)
    assert dtb.read_bytes() == demo.DTB


def test_meta_parsed_back(sbc_image: tuple[Path, DiskSpec]) -> None:
    raw, spec = sbc_image
    meta = spec.layout().partition("META")
    with raw.open("rb") as f:
        f.seek(meta.offset(512))
        block = f.read(meta.size(512))
    assert meta_adv.parse_adv(block) == {0x0C: b"sbc"}  # no 0x11 on arm64 sd-boot (§7.1 step 1)

"""SBC overlays in disk images: the installer contract (imager spec §10) and its place in the §7.1 flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.builder.assets.disk import DiskQuirks, DiskSpec, build_disk, check_raw_writes
from services.builder.enums import Arch, Bootloader
from services.builder.steps import overlay
from services.builder.steps.overlay import InstallRequest, OverlayInstaller, OverlayOptions
from services.catalog.versions import Version
from services.schematic.canonical import options_yaml
from services.schematic.model import OptionMap
from services.shared.errors import Internal
from tests.unit.builder_disk.conftest import FakeTools
from tests.unit.builder_disk.test_disk_asset import _read

MIB = 1024 * 1024
Q112 = DiskQuirks.for_version(Version(1, 12, 1))


def test_argv() -> None:
    assert overlay.get_options_argv(Path("/o/installers/rock5b")) == ["/o/installers/rock5b", "get-options"]
    assert overlay.install_argv(Path("/o/installers/rock5b")) == ["/o/installers/rock5b", "install"]


def test_options_input() -> None:
    assert overlay.options_input("") == b"{}\n"
    assert overlay.options_input("console: ttyS2\n") == b"console: ttyS2\n"


def test_install_input_nests_the_canonical_options_unchanged() -> None:
    options = options_yaml(OptionMap({"configTxtAppend": "a=1\nb=2", "n": {"1": 1}}))
    request = InstallRequest(Path("/w/disk.raw"), Path("/w/image"), Path("/w/overlay/artifacts"), options)
    assert overlay.install_input(request).decode() == (
        "installDisk: /w/disk.raw\n"
        "mountPrefix: /w/image\n"
        "artifactsPath: /w/overlay/artifacts\n"
        "extraOptions:\n"
        "    configTxtAppend: |-\n"
        "        a=1\n"
        "        b=2\n"
        '    "n":\n'
        '        "1": 1\n'
    )
    bare = InstallRequest(Path("/a b/disk"), Path("/m"), Path("/x"))
    assert (
        overlay.install_input(bare) == b"installDisk: /a b/disk\nmountPrefix: /m\nartifactsPath: /x\nextraOptions: {}\n"
    )


def test_parse_options() -> None:
    stdout = b"name: rock5b\nkernelArgs:\n  - cma=128MB\n  - console=ttyS2,115200\npartitionOptions:\n  offset: 20480\n"
    assert overlay.parse_options(stdout) == OverlayOptions("rock5b", ("cma=128MB", "console=ttyS2,115200"), 20480)
    assert overlay.parse_options(b"name: rpi\nfuture: ignored\n") == OverlayOptions("rpi")
    assert overlay.parse_options(b"") == OverlayOptions("")


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"[1, 2]\n", "get-options output must be a mapping"),
        (b"kernelArgs: a=1\n", "kernelArgs must be a list of strings"),
        (b"kernelArgs: [1]\n", "kernelArgs must be a list of strings"),
        (b"partitionOptions: 5\n", "partitionOptions must be a mapping"),
        (b"partitionOptions: {offset: -1}\n", "offset must be a uint64"),
        (b"partitionOptions: {offset: 1.5}\n", "offset must be a uint64"),
        (b"name: [a]\n", "name must be a string"),
        (b"name: [\n", "printed invalid YAML"),
    ],
)
def test_parse_options_rejects(stdout: bytes, message: str) -> None:
    with pytest.raises(Internal, match=message):
        overlay.parse_options(stdout)


def _spec(tmp_path: Path, offset: int = 2048, **kwargs: object) -> DiskSpec:
    files = {name: tmp_path / name for name in ("vmlinuz", "initramfs.xz", "uki.efi", "sd-boot.efi")}
    for path in files.values():
        path.write_bytes(path.name.encode())
    artifacts = tmp_path / "overlay" / "artifacts"
    (artifacts / "arm64").mkdir(parents=True, exist_ok=True)
    (artifacts / "arm64" / "u-boot.bin").write_bytes(b"UBOOT")
    step = OverlayInstaller(
        tmp_path / "overlay" / "installers" / "board", artifacts, OverlayOptions("board", (), offset), "a: b\n"
    )
    base: dict[str, object] = {
        "arch": Arch.ARM64, "version": "v1.12.1", "bootloader": Bootloader.SD_BOOT, "cmdline": "console=ttyAMA0",
        "disk_size": 2246 * MIB, "quirks": Q112, "kernel": files["vmlinuz"], "initramfs": files["initramfs.xz"],
        "uki": files["uki.efi"], "sd_boot": files["sd-boot.efi"], "overlay": step,
    }  # fmt: skip
    return DiskSpec(**(base | kwargs))  # type: ignore[arg-type]


def test_partition_offset_moves_the_entries_and_the_first_partition(tmp_path: Path) -> None:
    """§10: `gpt.WithSkipLBAs(offset)`; rock5b's 20480 puts the entries at LBA 20482, EFI at 22528."""
    layout = _spec(tmp_path, offset=20480).layout()
    assert layout.geometry.primary_entries_lba == 20482
    assert layout.partition("EFI").first_lba == 22528
    demo = _spec(tmp_path).layout()
    assert (demo.geometry.primary_entries_lba, demo.partition("EFI").first_lba) == (2050, 4096)
    assert _spec(tmp_path, overlay=None).layout().partition("EFI").first_lba == 2048


def _sparse(path: Path, size: int, writes: dict[int, bytes]) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in writes.items():
            f.seek(offset)
            f.write(data)
    return path


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (446, "the protective MBR entry"),
        (512, "the primary GPT header"),
        (2050 * 512 + 100, "the primary GPT entries"),
        (4096 * 512 + 5 * MIB, "partition EFI"),
        (2246 * MIB - 512, "the backup GPT"),
    ],
)
def test_raw_writes_outside_the_reserved_space_are_refused(tmp_path: Path, offset: int, message: str) -> None:
    layout = _spec(tmp_path).layout()
    disk = _sparse(tmp_path / "disk.raw", 2246 * MIB, {offset: b"X"})
    with pytest.raises(Internal, match=f"overlay installer board wrote into {message}"):
        check_raw_writes(disk, layout, "board")


def test_raw_writes_in_the_reserved_space_pass(tmp_path: Path) -> None:
    layout = _spec(tmp_path).layout()
    disk = _sparse(tmp_path / "disk.raw", 2246 * MIB, {0: b"boot code", 32768: b"U" * 4096, 2040 * 512: b"x"})
    check_raw_writes(disk, layout, "board")
    _sparse(disk, 2246 * MIB + 512, {})
    with pytest.raises(Internal, match="resized the disk image"):
        check_raw_writes(disk, layout, "board")


async def test_install_runs_on_the_bare_image_and_its_files_land_on_the_esp(
    tmp_path: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§7.1: staging → sparse disk → overlay `install` (no GPT yet) → GPT → filesystems; M/boot/EFI → ESP."""
    monkeypatch.setattr(overlay, "run_tool", fake_tools.run_tool)
    spec = _spec(tmp_path)
    work, out = tmp_path / "work", tmp_path / "metal-arm64.raw"
    work.mkdir()
    seen: dict[str, object] = {}

    def install(argv: list[str]) -> None:
        disk, prefix = work / "disk.raw", work / "image"
        head = _read(disk, 0, 1024)
        seen["gpt_before_install"] = head[512:520] == b"EFI PART"
        seen["artifacts"] = (work / "overlay" / "artifacts" / "arm64" / "u-boot.bin").read_bytes()
        with disk.open("r+b") as f:
            f.seek(32768)
            f.write(b"UBOOT")
        (prefix / "boot" / "EFI" / "dtb").mkdir(parents=True)
        (prefix / "boot" / "EFI" / "dtb" / "board.dtb").write_bytes(b"dtb")
        (prefix / "boot" / "EFI" / "loader").mkdir()
        (prefix / "boot" / "EFI" / "loader" / "extra.conf").write_bytes(b"merged")

    fake_tools.handlers["board"] = install
    fake_tools.handlers["mcopy"] = lambda argv: seen.setdefault("mcopy", []).append(argv[-2])  # type: ignore[attr-defined]
    await build_disk(spec, work, out)
    install_calls = [c for c in fake_tools.calls if c.argv[0].endswith("/board")]
    assert [c.argv[1:] for c in install_calls] == [["install"]]
    assert seen["gpt_before_install"] is False and seen["artifacts"] == b"UBOOT"
    esp = work / "image" / "EFI"
    assert (esp / "dtb" / "board.dtb").read_bytes() == b"dtb"
    assert (esp / "loader" / "extra.conf").read_bytes() == b"merged" and (esp / "loader" / "loader.conf").is_file()
    assert not (work / "image" / "boot" / "EFI").exists()
    copied = {Path(p).name for p in seen["mcopy"]}  # type: ignore[attr-defined]
    assert {"board.dtb", "BOOTAA64.efi"} <= copied
    assert _read(out, 32768, 5) == b"UBOOT" and _read(out, 512, 8) == b"EFI PART"

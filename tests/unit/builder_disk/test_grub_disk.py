"""GRUB/sd-boot staging for disk images: grub.cfg, grub-mkimage argv, blocklist patch (imager spec §7.4-§7.6)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from services.builder.enums import Arch
from services.builder.steps import grub_disk
from services.builder.steps.gpt import MIB, Geometry, PartitionSpec, plan_layout
from services.builder.steps.grub_disk import GrubStage, SdBootStage
from tests.unit.builder_disk.conftest import FakeTools
from tests.unit.builder_uki_iso.helpers import StubSection, make_stub

MODS = [
    "part_gpt", "ext2", "fat", "xfs", "normal", "configfile", "linux", "boot", "search", "search_fs_uuid",
    "search_fs_file", "ls", "cat", "echo", "test", "help", "reboot", "halt", "all_video",
]  # fmt: skip


def test_disk_grub_cfg_matches_spec_template() -> None:
    assert grub_disk.disk_grub_cfg("console=ttyS0 a=$x;y", name="Talos", version="v1.12.0", reset_option=True) == (
        'set default="A - Talos v1.12.0"\n'
        "\n"
        "set timeout=3\n"
        "\n"
        "insmod all_video\n"
        "\n"
        "terminal_input console\n"
        "terminal_output console\n"
        "\n"
        'menuentry "A - Talos v1.12.0" {\n'
        "  set gfxmode=auto\n"
        "  set gfxpayload=text\n"
        "  linux /A/vmlinuz console=ttyS0 a=\\$x\\;y\n"
        "  initrd /A/initramfs.xz\n"
        "}\n"
        'menuentry "Reset Talos installation and return to maintenance mode" {\n'
        "  set gfxmode=auto\n"
        "  set gfxpayload=text\n"
        "  linux /A/vmlinuz console=ttyS0 a=\\$x\\;y talos.experimental.wipe=system:EPHEMERAL,STATE\n"
        "  initrd /A/initramfs.xz\n"
        "}\n"
    )


def test_disk_grub_cfg_without_reset_is_talos_testdata() -> None:
    """Talos' `grub_write_test.cfg` (no reset entry, product `Test`)."""
    assert grub_disk.disk_grub_cfg("cmdline A", name="Test", version="v0.0.1", reset_option=False) == (
        'set default="A - Test v0.0.1"\n\nset timeout=3\n\ninsmod all_video\n\n'
        "terminal_input console\nterminal_output console\n\n"
        'menuentry "A - Test v0.0.1" {\n  set gfxmode=auto\n  set gfxpayload=text\n'
        "  linux /A/vmlinuz cmdline A\n  initrd /A/initramfs.xz\n}\n"
    )
    with pytest.raises(ValueError, match="one line"):
        grub_disk.disk_grub_cfg("a\nb", name="Talos", version="v1", reset_option=False)


def test_mkimage_argv() -> None:
    assert grub_disk.mkimage_bios_argv(Path("/m/core.img")) == [
        "grub-mkimage", "--format", "i386-pc", "--output", "/m/core.img", "--prefix", "(hd0,gpt3)/grub",
        *MODS, "biosdisk", "part_msdos",
    ]  # fmt: skip
    for arch, fmt in ((Arch.AMD64, "x86_64-efi"), (Arch.ARM64, "arm64-efi")):
        assert grub_disk.mkimage_efi_argv(arch, Path("/m/g.efi")) == [
            "grub-mkimage", "--format", fmt, "--output", "/m/g.efi", "--prefix", "(hd0,gpt3)/grub",
            "--compression", "xz", *MODS,
        ]  # fmt: skip


def test_blocklist_patches() -> None:
    boot = bytes(range(256)) * 2
    patched = grub_disk.patch_boot_img(boot, 206848)
    assert struct.unpack_from("<Q", patched, 0x5C)[0] == 206848
    assert patched[0x66:0x68] == b"\x90\x90"
    assert patched[:0x5C] == boot[:0x5C] and patched[0x64:0x66] == boot[0x64:0x66] and patched[0x68:] == boot[0x68:]
    core = bytearray(1024)
    struct.pack_into("<QHH", core, 0x1F4, 2, 310, 0x820)
    patched_core = grub_disk.patch_core_img(bytes(core), 206848)
    assert struct.unpack_from("<QHH", patched_core, 0x1F4) == (206849, 310, 0x820)  # the length stays
    with pytest.raises(ValueError, match="only"):
        grub_disk.patch_core_img(bytes(100), 1)


@pytest.mark.parametrize("sector", [512, 4096])
def test_install_bios_writes_mbr_code_and_core(tmp_path: Path, sector: int) -> None:
    specs = (PartitionSpec("EFI", MIB), PartitionSpec("BIOS", MIB))
    layout = plan_layout(Geometry(8 * MIB, sector), specs)
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\x00" * 446 + b"P" * 64 + b"\x55\xaa" + bytes(8 * MIB - 512))
    boot_img, core_img = tmp_path / "boot.img", tmp_path / "core.img"
    boot_img.write_bytes(b"B" * 512)
    core_img.write_bytes(b"C" * 2048)
    grub_disk.install_bios(disk, layout, boot_img, core_img)
    data = disk.read_bytes()
    bios = layout.partition("BIOS")
    assert data[:446] == grub_disk.patch_boot_img(b"B" * 512, bios.first_lba)[:446]
    assert data[446:512] == b"P" * 64 + b"\x55\xaa"  # the PMBR entry is not touched
    start = bios.first_lba * sector
    assert data[start : start + 2048] == grub_disk.patch_core_img(b"C" * 2048, bios.first_lba)
    core_img.write_bytes(bytes(MIB + 1))
    with pytest.raises(ValueError, match="does not fit"):
        grub_disk.install_bios(disk, layout, boot_img, core_img)


def test_loader_conf() -> None:
    assert grub_disk.loader_conf(None) == "# systemd-boot configuration\n\ntimeout 10\n"
    assert (
        grub_disk.loader_conf("if-safe") == "# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll if-safe\n"
    )


def test_sdboot_tree(tmp_path: Path) -> None:
    sd, uki, pk = tmp_path / "sd.efi", tmp_path / "uki.efi", tmp_path / "PK.auth"
    stage = SdBootStage(Arch.ARM64, sd, uki, "v1.12.0", "force", (("PK.auth", pk),))
    assert grub_disk.sdboot_tree(stage) == {
        "EFI/boot/BOOTAA64.efi": sd,
        "EFI/Linux/Talos-v1.12.0.efi": uki,
        "loader/loader.conf": grub_disk.loader_conf("force").encode(),
        "loader/keys/auto/PK.auth": pk,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": ""}, "invalid version"),
        ({"version": "v1/2"}, "invalid version"),
        ({"enroll_mode": "off", "enroll_keys": (("PK.auth", Path("/k")),)}, "must be one of"),
        ({"enroll_mode": "force"}, "go together"),
        ({"enroll_keys": (("PK.auth", Path("/k")),)}, "go together"),
        ({"enroll_mode": "force", "enroll_keys": (("../PK.auth", Path("/k")),)}, "plain"),
    ],
)
def test_bad_sdboot_stages(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"arch": Arch.AMD64, "sd_boot": Path("/s"), "uki": Path("/u"), "version": "v1.10.0"}
    with pytest.raises(ValueError, match=message):
        SdBootStage(**(base | kwargs))  # type: ignore[arg-type]


def test_bad_grub_stages() -> None:
    with pytest.raises(ValueError, match="both kernel and initramfs"):
        GrubStage(Arch.AMD64, "c", "Talos", "v1", True, kernel=Path("/k"))
    with pytest.raises(ValueError, match="or a UKI"):
        GrubStage(Arch.AMD64, "c", "Talos", "v1", True)


async def test_stage_grub_from_uki(tmp_path: Path, fake_tools: FakeTools, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a kernel path, `.linux`/`.initrd` come out of the UKI (§7.4 step 1); amd64 builds core.img,
    dual-boot (`efi=False`) skips GRUB's EFI image."""
    monkeypatch.setattr(grub_disk, "BOOT_IMG", tmp_path / "grub-boot.img")
    (tmp_path / "grub-boot.img").write_bytes(b"boot.img" * 64)
    uki = tmp_path / "uki.efi"
    uki.write_bytes(make_stub([
        StubSection(".text", 0x1000, b"\x90" * 64, 0x60000020),
        StubSection(".linux", 0x2000, b"KERNEL" * 300),
        StubSection(".initrd", 0x3000, b"INITRD" * 10),
    ]))  # fmt: skip
    scratch = tmp_path / "m"
    stage = GrubStage(Arch.AMD64, "console=ttyS0", "Talos", "v1.10.0", True, uki=uki, efi=False)
    await grub_disk.stage_grub(stage, scratch)
    assert (scratch / "boot/A/vmlinuz").read_bytes() == b"KERNEL" * 300
    assert (scratch / "boot/A/initramfs.xz").read_bytes() == b"INITRD" * 10
    modes = {p: (scratch / "boot" / p).stat().st_mode & 0o777 for p in ("", "A", "A/vmlinuz", "grub", "grub/grub.cfg")}
    assert modes == {"": 0o755, "A": 0o755, "A/vmlinuz": 0o644, "grub": 0o700, "grub/grub.cfg": 0o600}
    assert (scratch / "boot.img").read_bytes() == b"boot.img" * 64
    assert fake_tools.argvs() == [grub_disk.mkimage_bios_argv(scratch / "core.img")]
    assert not (scratch / "EFI").exists()


async def test_stage_grub_arm64_has_no_bios_stage(tmp_path: Path, fake_tools: FakeTools) -> None:
    kernel, initrd = tmp_path / "k", tmp_path / "i"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    stage = GrubStage(Arch.ARM64, "c", "Talos", "v1.9.0", True, kernel=kernel, initramfs=initrd)
    await grub_disk.stage_grub(stage, tmp_path / "m")
    assert fake_tools.argvs() == [grub_disk.mkimage_efi_argv(Arch.ARM64, tmp_path / "m/EFI/EFI/boot/BOOTAA64.efi")]
    assert not (tmp_path / "m/boot.img").exists()


def test_stage_sdboot_replaces_grub_esp(tmp_path: Path) -> None:
    scratch = tmp_path / "m"
    (scratch / "EFI/EFI/boot").mkdir(parents=True)
    (scratch / "EFI/EFI/boot/BOOTX64.efi").write_bytes(b"grub")
    sd, uki = tmp_path / "sd", tmp_path / "uki"
    sd.write_bytes(b"systemd-boot")
    uki.write_bytes(b"uki")
    grub_disk.stage_sdboot(SdBootStage(Arch.AMD64, sd, uki, "v1.10.0"), scratch)
    files = sorted(p.relative_to(scratch / "EFI").as_posix() for p in (scratch / "EFI").rglob("*") if p.is_file())
    assert files == ["EFI/Linux/Talos-v1.10.0.efi", "EFI/boot/BOOTX64.efi", "loader/loader.conf"]
    assert (scratch / "EFI/EFI/boot/BOOTX64.efi").read_bytes() == b"systemd-boot"
    assert grub_disk.esp_tops(scratch / "EFI") == ["EFI", "loader"]

"""BOOT XFS step: argv per version config, protofile text, timestamp pinning (imager spec §7.3, §2.5, §13)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from services.builder.steps import xfs
from services.builder.steps.xfs import XfsSpec
from services.shared.errors import Internal
from tests.unit.builder_disk.conftest import FakeTools

MIB = 1024 * 1024
BOOT_UUID = uuid.UUID("24c73076-4092-85dd-9d98-686a2dbf6d81")
CONF = "/usr/share/xfsprogs/mkfs/"
EPOCH = 1559424892
LISTING = """\
rootino = 128
rbmino = 129
rsumino = 130
/:
8          128                directory      0x0000002e   1 . (good)
10         128                directory      0x0000172e   2 .. (good)
12         524416             directory      0x00000041   1 A (good)
14         1179776            directory      0x0cfcbae2   4 grub (good)
/A:
8          524416             directory      0x0000002e   1 . (good)
10         128                directory      0x0000172e   2 .. (good)
12         524417             regular        0x9a8300a0  12 initramfs.xz (good)
15         524418             regular        0xcd3a6194   7 vmlinuz (good)
"""


@pytest.mark.parametrize(
    ("config", "rmapbt"),
    [("lts_6.1.conf", "0"), ("lts_6.6.conf", "1"), ("lts_6.12.conf", "1"), ("lts_6.18.conf", "1")],
)
def test_mkfs_argv_per_config(config: str, rmapbt: str) -> None:
    spec = XfsSpec("BOOT", 1000 * MIB, BOOT_UUID, CONF + config)
    assert xfs.mkfs_argv(spec, Path("/w/BOOT.img"), Path("/w/BOOT.img.proto")) == [
        "mkfs.xfs", "-n", "ftype=1",
        "-m", f"bigtime=1,crc=1,finobt=1,inobtcount=1,reflink=1,rmapbt={rmapbt}",
        "-i", "sparse=1,nrext64=0",
        "-f", "-L", "BOOT",
        "-p", "/w/BOOT.img.proto",
        "-m", "uuid=24c73076-4092-85dd-9d98-686a2dbf6d81",
        "/w/BOOT.img",
    ]  # fmt: skip


def test_mkfs_argv_with_sector_size() -> None:
    spec = XfsSpec("BOOT", 2000 * MIB, BOOT_UUID, CONF + "lts_6.18.conf", sector_size=4096)
    argv = xfs.mkfs_argv(spec, Path("/w/BOOT.img"), Path("/w/p"))
    assert argv[argv.index("-L") : argv.index("-p")] == ["-L", "BOOT", "-s", "size=4096"]


def test_small_filesystems_use_the_fstests_escape_hatch() -> None:
    assert xfs.mkfs_env(XfsSpec("BOOT", 300 * MIB, BOOT_UUID, CONF + "lts_6.1.conf")) == {}
    env = xfs.mkfs_env(XfsSpec("BOOT", 64 * MIB, BOOT_UUID, CONF + "lts_6.1.conf"))
    assert set(env) == {"TEST_DIR", "TEST_DEV", "QA_CHECK_FS"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": ""}, "1-12 characters"),
        ({"label": "THIRTEEN_CHRS"}, "1-12 characters"),
        ({"config": CONF + "lts_5.10.conf"}, "unknown mkfs.xfs config"),
        ({"sector_size": 1024}, "not usable"),
        ({"size": 1000 * MIB + 512, "sector_size": 4096}, "not usable"),
    ],
)
def test_bad_specs(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "label": "BOOT",
        "size": 1000 * MIB,
        "fs_uuid": BOOT_UUID,
        "config": CONF + "lts_6.1.conf",
    }
    with pytest.raises(ValueError, match=message):
        XfsSpec(**(base | kwargs))  # type: ignore[arg-type]


def _boot_tree(root: Path) -> Path:
    (root / "A").mkdir(parents=True)
    (root / "grub").mkdir(mode=0o700)
    for name in ("vmlinuz", "initramfs.xz"):
        (root / "A" / name).write_bytes(b"x")
        (root / "A" / name).chmod(0o644)
    (root / "grub" / "grub.cfg").write_text("cfg")
    (root / "grub" / "grub.cfg").chmod(0o600)
    (root / "grub").chmod(0o700)
    root.chmod(0o755)
    (root / "A").chmod(0o755)
    return root


def test_protofile_matches_spec_example(tmp_path: Path) -> None:
    root = _boot_tree(tmp_path / "boot")
    assert xfs.protofile(root) == (
        "/\n"
        "0 0\n"
        "d--755 0 0\n"
        " A d--755 0 0\n"
        f"  initramfs.xz ---644 0 0 {root}/A/initramfs.xz\n"
        f"  vmlinuz ---644 0 0 {root}/A/vmlinuz\n"
        " $\n"
        " grub d--700 0 0\n"
        f"  grub.cfg ---600 0 0 {root}/grub/grub.cfg\n"
        " $\n"
        "$\n"
    )


def test_protofile_other_types_files_first(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "a-dir").mkdir(parents=True)
    (root / "z-file").write_bytes(b"")
    (root / "z-file").chmod(0o4755)
    (root / "link").symlink_to("z-file")
    os.mkfifo(root / "pipe", 0o600)
    root.chmod(0o2755)
    (root / "a-dir").chmod(0o755)
    assert xfs.protofile(root).splitlines() == [
        "/", "0 0", "d-g755 0 0",
        " link l--777 0 0 z-file",
        " pipe p--600 0 0",
        f" z-file -u-755 0 0 {root}/z-file",
        " a-dir d--755 0 0",
        " $",
        "$",
    ]  # fmt: skip


def test_protofile_rejects_whitespace(tmp_path: Path) -> None:
    (tmp_path / "bad name").write_bytes(b"")
    with pytest.raises(ValueError, match="whitespace"):
        xfs.protofile(tmp_path)


def test_inode_discovery_and_pinning(tmp_path: Path) -> None:
    root = _boot_tree(tmp_path / "boot")
    assert xfs.directories(root) == ["/", "/A", "/grub"]
    assert xfs.ls_argv(Path("/w/B.img"), ["/", "/A"]) == [
        "xfs_db", "-r", "-c", "sb 0", "-c", "p rootino rbmino rsumino", "-c", "ls /", "-c", "ls /A", "/w/B.img",
    ]  # fmt: skip
    assert xfs.parse_inodes(LISTING) == [128, 129, 130, 524416, 524417, 524418, 1179776]
    value = (EPOCH + 2**31) * 10**9  # bigtime: ns since -2^31 s
    assert xfs.bigtime(EPOCH) == value
    writes = [f"write {f} {value}" for f in ("core.atime.sec", "core.mtime.sec", "core.ctime.sec", "v3.crtime.sec")]
    assert xfs.pin_times_argv(Path("/w/B.img"), [128, 129], EPOCH) == [
        "xfs_db", "-x",
        "-c", "inode 128", *(a for w in writes for a in ("-c", w)),
        "-c", "inode 129", *(a for w in writes for a in ("-c", w)),
        "/w/B.img",
    ]  # fmt: skip


async def test_make_xfs_image_runs_mkfs_then_pins(tmp_path: Path, fake_tools: FakeTools) -> None:
    root = _boot_tree(tmp_path / "boot")
    image = tmp_path / "BOOT.img"
    spec = XfsSpec("BOOT", 64 * MIB, BOOT_UUID, CONF + "lts_6.12.conf")
    protos: list[str] = []

    def mkfs(argv: list[str]) -> None:
        protos.append(Path(argv[argv.index("-p") + 1]).read_text())

    fake_tools.handlers["mkfs.xfs"] = mkfs
    fake_tools.handlers["xfs_db"] = lambda argv: LISTING.encode() if "-r" in argv else None
    await xfs.make_xfs_image(spec, image, root, source_date_epoch=EPOCH)
    assert image.stat().st_size == 64 * MIB
    proto = tmp_path / "BOOT.img.proto"
    assert fake_tools.argvs() == [
        xfs.mkfs_argv(spec, image, proto),
        xfs.ls_argv(image, ["/", "/A", "/grub"]),
        xfs.pin_times_argv(image, [128, 129, 130, 524416, 524417, 524418, 1179776], EPOCH),
    ]
    assert protos == [xfs.protofile(root)] and not proto.exists()
    assert fake_tools.calls[0].env_extra.keys() == {"TEST_DIR", "TEST_DEV", "QA_CHECK_FS"}


async def test_unparsable_listing_fails_loudly(tmp_path: Path, fake_tools: FakeTools) -> None:
    root = _boot_tree(tmp_path / "boot")
    spec = XfsSpec("BOOT", 400 * MIB, BOOT_UUID, CONF + "lts_6.1.conf")
    with pytest.raises(Internal, match="cannot pin timestamps"):
        await xfs.make_xfs_image(spec, tmp_path / "BOOT.img", root, source_date_epoch=EPOCH)
    assert [c.argv[0] for c in fake_tools.calls] == ["mkfs.xfs", "xfs_db"] and fake_tools.calls[0].env_extra == {}

"""The §4.2 procedure with fake tools: every tool call pinned, segments and listings checked."""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import pytest

from services.builder.assets.extensions import ExtensionDir, ExtensionSource, ExtensionTarball
from services.builder.assets.initramfs import InitramfsOptions, InitramfsSpec, build_initramfs, listings
from services.builder.assets.modules_dep import build_modules_dep
from services.builder.assets.virtual_extensions import SchematicExtension, schematic_tar
from services.builder.steps import cpio
from services.shared.errors import Internal, InvalidArgument
from tests.unit.builder_steps.conftest import FakeTools

K = "6.18.1-talos"
EPOCH = 1700000000


def _newc(root: Path, names: list[str]) -> bytes:
    buf = io.BytesIO()
    cpio.write_newc(buf, cpio.members_from_tree(root, names), mtime=1)
    return buf.getvalue()


def _original(tmp_path: Path) -> Path:
    """An *uncompressed* original (the codec copies it): `init` + a fake `rootfs.sqsh`."""
    src = tmp_path / "orig"
    src.mkdir()
    (src / "init").write_bytes(b"#!/init\n")
    (src / "rootfs.sqsh").write_bytes(b"fake squashfs")
    path = tmp_path / "initramfs.xz"
    path.write_bytes(_newc(src, ["init", "rootfs.sqsh"]))
    return path


def _play_tools(fake: FakeTools) -> None:
    def unsquashfs(argv: list[str], _stdin: bytes | None, _out: Path | None) -> None:
        dest, path = Path(argv[argv.index("-d") + 1]), argv[-1].lstrip("/")
        (dest / path / K / "kernel").mkdir(parents=True)
        (dest / path / K / "modules.order").write_text("kernel/base.ko\n")

    def depmod(argv: list[str], _stdin: bytes | None, _out: Path | None) -> None:
        kdir = Path(argv[argv.index("--basedir") + 1]) / "lib/modules" / argv[-1]
        found = sorted(str(p.relative_to(kdir)) for p in kdir.rglob("*.ko"))
        (kdir / "modules.dep").write_text("".join(f"{name}:\n" for name in found))
        (kdir / "modules.dep.bin").write_bytes(b"bin")

    fake.handlers.update(
        {
            "unsquashfs": unsquashfs,
            "depmod": depmod,
            "tar2sqfs": lambda argv, stdin, _out: Path(argv[-1]).write_bytes(b"SQSH" + (stdin or b"")[:0]),
            "zstd": lambda argv, _stdin, out: out.write_bytes(b"ZSTD" + Path(argv[-1]).read_bytes()) if out else None,
        }
    )


def _extension(root: Path, name: str, files: dict[str, bytes]) -> ExtensionDir:
    (root / name / "rootfs").mkdir(parents=True)
    (root / name / "manifest.yaml").write_text(
        f"version: v1alpha1\nmetadata:\n  name: {name}\n  version: 1.0.0\n  author: test\n  description: {name}\n"
        "  compatibility:\n    talos:\n      version: '>= v1.10.0'\n"
    )
    for path, data in files.items():
        (root / name / "rootfs" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / name / "rootfs" / path).write_bytes(data)
    return ExtensionDir(root / name)


@pytest.mark.parametrize(
    ("compression", "usr_lib", "modules", "basedir"),
    [("zstd", True, "usr/lib/modules", "modules/usr"), ("xz", False, "lib/modules", "modules")],
)
async def test_build_pins_every_tool_call(
    tmp_path: Path, fake_tools: FakeTools, compression: str, usr_lib: bool, modules: str, basedir: str
) -> None:
    _play_tools(fake_tools)
    firmware = "usr/lib/firmware" if usr_lib else "lib/firmware"
    src = tmp_path / "src"
    (tmp_path / "schematic.tar").write_bytes(schematic_tar(SchematicExtension("f" * 64, "Image Factory (x)")))
    sources: list[ExtensionSource] = [
        _extension(src, "fw", {f"{firmware}/amd-ucode/microcode_amd.bin": b"AMD", f"{firmware}/nic.bin": b"N"}),
        _extension(src, "kmod", {f"{modules}/{K}/extras/drv.ko": b"\x7fELF"}),
        _extension(src, "local", {"usr/local/bin/tool": b"#!"}),
        ExtensionTarball(tmp_path / "schematic.tar"),
    ]
    original = _original(tmp_path)
    work, out = tmp_path / "work", tmp_path / "out.xz"
    work.mkdir()
    options = InitramfsOptions("v1.12.0", compression, usr_lib, EPOCH)  # type: ignore[arg-type]
    await build_initramfs(InitramfsSpec(original, tuple(sources), options), work, out)

    comp = ["-c", "zstd", "-X", "level=18"] if compression == "zstd" else ["-c", "xz", "-X", "dictsize=131072"]
    tar2sqfs = ["tar2sqfs", *comp, "-q", "-f", "-s", "-d", f"uid=0,gid=0,mode=0755,mtime={EPOCH}"]
    expected = [
        ["unsquashfs", "-no-xattrs", "-d", f"{work}/depmod/modules", "-f", "-n",
         f"{work}/depmod/rootfs.sqsh", f"/{modules}"],
        ["depmod", "--all", "--basedir", f"{work}/depmod/{basedir}", "--config", f"{work}/depmod/depmod.conf", K],
        *([*tar2sqfs, f"{work}/initramfs/{name}.sqsh"] for name in ("0", "1", "2", "3", "modules.dep")),
    ]  # fmt: skip
    if compression == "zstd":
        expected.append(["zstd", "-T0", "-18", "-c", "--quiet", f"{work}/extensions.cpio"])
    assert fake_tools.argvs() == expected
    assert {c.env_extra.get("SOURCE_DATE_EPOCH") for c in fake_tools.calls if c.argv[0] == "tar2sqfs"} == {str(EPOCH)}
    assert (work / "depmod/depmod.conf").read_text() == "search extras built-in\n"

    data = out.read_bytes()
    assert not out.with_name("out.xz.partial").exists()
    prefix = cpio.newc_prefix_length(data)
    early = list(cpio.iter_newc(io.BytesIO(data[:prefix])))
    microcode = "kernel/x86/microcode"
    assert [e.name for e in early] == ["kernel", "kernel/x86", microcode, f"{microcode}/AuthenticAMD.bin"]
    assert early[-1].data == b"AMD"
    assert data[prefix : prefix + original.stat().st_size] == original.read_bytes()
    tail = data[prefix + original.stat().st_size :]
    if compression == "zstd":
        assert tail.startswith(b"ZSTD")
        archive = tail[4:]
    else:
        archive = lzma.decompress(tail)
    names = [e.name for e in cpio.iter_newc(io.BytesIO(archive), load_data=False)]
    parts = firmware.split("/")
    fw_tree = ["/".join(parts[: i + 1]) for i in range(len(parts))] + [f"{firmware}/amd-ucode", f"{firmware}/nic.bin"]
    # The walk is sorted per level and depth-first: `lib/…` sorts before `modules.dep.sqsh`, `usr/…` after.
    middle = ["modules.dep.sqsh", *fw_tree] if usr_lib else [*fw_tree, "modules.dep.sqsh"]
    assert names == ["0.sqsh", "1.sqsh", "2.sqsh", "3.sqsh", "extensions.yaml", *middle]
    assert {e.mtime for e in cpio.iter_newc(io.BytesIO(archive))} == {EPOCH}
    yaml = next(e.data for e in cpio.iter_newc(io.BytesIO(archive)) if e.name == "extensions.yaml").decode()
    assert [line.strip() for line in yaml.splitlines() if "image:" in line] == [
        "- image: 0.sqsh", "- image: 1.sqsh", "- image: 2.sqsh", "- image: 3.sqsh", "- image: modules.dep.sqsh",
    ]  # fmt: skip
    staged = work / "modules.dep" / modules / K
    assert sorted(p.name for p in staged.iterdir()) == ["modules.dep", "modules.dep.bin", "modules.order"]
    assert (staged / "modules.dep").read_text() == "extras/drv.ko:\n"


async def test_no_extensions_copies_input(tmp_path: Path, fake_tools: FakeTools) -> None:
    original = _original(tmp_path)
    await build_initramfs(InitramfsSpec(original, (), InitramfsOptions("v1.12.0")), tmp_path, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == original.read_bytes()
    assert fake_tools.calls == []


async def test_constraint_failure_stops_before_tools(tmp_path: Path, fake_tools: FakeTools) -> None:
    ext = _extension(tmp_path / "src", "old", {"usr/local/x": b""})
    spec = InitramfsSpec(_original(tmp_path), (ext,), InitramfsOptions("v1.9.0"))
    with pytest.raises(InvalidArgument, match='error validating extension "old": version constraint'):
        await build_initramfs(spec, tmp_path / "work", tmp_path / "out")
    assert fake_tools.calls == []


async def test_modules_dep_needs_exactly_one_kernel(tmp_path: Path, fake_tools: FakeTools) -> None:
    def unsquashfs(argv: list[str], _stdin: bytes | None, _out: Path | None) -> None:
        for k in ("6.1.0", "6.2.0"):
            (Path(argv[argv.index("-d") + 1]) / "usr/lib/modules" / k).mkdir(parents=True)

    fake_tools.handlers["unsquashfs"] = unsquashfs
    with pytest.raises(Internal, match="invalid kernel modules path"):
        await build_modules_dep(_original(tmp_path), [], tmp_path / "w", modules_path="usr/lib/modules")


async def test_modules_dep_kernel_mismatch(tmp_path: Path, fake_tools: FakeTools) -> None:
    _play_tools(fake_tools)
    other = tmp_path / "ext/usr/lib/modules"
    (other / "5.0.0").mkdir(parents=True)
    with pytest.raises(InvalidArgument, match=f"copying kernel modules from {other} failed: no {K} directory"):
        await build_modules_dep(_original(tmp_path), [other], tmp_path / "w", modules_path="usr/lib/modules")


def test_listings(tmp_path: Path) -> None:
    for path in ("kernel/x86/microcode/GenuineIntel.bin", "usr/lib/firmware/a", "0.sqsh", "kernelx", "b/kernel"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    compressed, uncompressed = listings(tmp_path)
    assert uncompressed == ["kernel", "kernel/x86", "kernel/x86/microcode", "kernel/x86/microcode/GenuineIntel.bin"]
    assert compressed == [
        "0.sqsh", "b", "b/kernel", "kernelx", "usr", "usr/lib", "usr/lib/firmware", "usr/lib/firmware/a",
    ]  # fmt: skip

"""Initramfs with system extensions, built with the real tools and checked with real consumers
(imager spec §4, §12 "Initramfs"; factory spec §15 initramfs items; §13 reproducibility).

The original initramfs is made here: `init` + a `rootfs.sqsh` holding `<modules>/<K>/modules.order`,
`modules.builtin` and one module. Kernel modules are real `.ko` files when the machine has some (under
/lib/modules, or in a cached Debian `linux-image-*.deb`); otherwise a minimal ELF relocatable with a
`.modinfo` section, which depmod indexes just the same.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import stat
import struct
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from services.builder.assets.extensions import ExtensionDir, ExtensionLayers, ExtensionSource, ExtensionTarball
from services.builder.assets.initramfs import InitramfsOptions, InitramfsSpec, build_initramfs
from services.builder.assets.virtual_extensions import (
    STATE_SELINUX_LABEL,
    SchematicExtension,
    embedded_config_tar,
    factory_author,
    schematic_tar,
)
from services.builder.steps import cpio
from services.builder.steps.initramfs_codec import Compression
from services.builder.steps.squashfs import SquashfsSpec, make_squashfs
from services.schematic.canonical import canonical_yaml
from services.schematic.ids import schematic_id
from services.schematic.model import Customization, Schematic
from services.shared.tools import run_tool
from tests.support.real_tools import require_tools

pytestmark = pytest.mark.tools

K = "6.18.1-talos"
EPOCH = 1559424892
SCHEMATIC = Schematic(customization=Customization(extra_kernel_args=("noapic",)))
CONFIG = b"apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-1\n"
TOOLS = ("tar2sqfs", "unsquashfs", "rdsquashfs", "depmod", "zstd", "xz", "cpio")


# --- kernel modules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modules:
    base: bytes  # goes into the Talos rootfs as kernel/drivers/block/loop.ko
    extension: bytes  # shipped by the extension as extras/dummy.ko
    origin: str


def _minimal_ko(name: str) -> bytes:
    """ELF64 relocatable: header, `.modinfo`, an empty `.symtab`, `.strtab`, `.shstrtab`."""
    modinfo = f"license=GPL\0name={name}\0vermagic={K} SMP mod_unload\0".encode()
    sections = [(b".modinfo", 1, 2, modinfo), (b".symtab", 2, 0, bytes(24)), (b".strtab", 3, 0, b"\0")]
    shstrtab = b"\0" + b"".join(n + b"\0" for n, *_ in sections) + b".shstrtab\0"
    sections.append((b".shstrtab", 3, 0, shstrtab))
    body, offsets = b"", []
    for *_, data in sections:
        offsets.append(64 + len(body))
        body += data + b"\0" * (-len(data) % 8)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)  # 64-bit, little endian, version 1
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, 64 + len(body), 0, 64, 0, 0, 64, 5, 4)
    table, name_at = bytes(64), 1
    for index, (name_, kind, flags, data) in enumerate(sections):
        is_symtab = name_ == b".symtab"
        table += struct.pack(
            "<IIQQQQIIQQ", name_at, kind, flags, 0, offsets[index], len(data),
            3 if is_symtab else 0, 1 if is_symtab else 0, 8 if is_symtab else 1, 24 if is_symtab else 0,
        )  # fmt: skip
        name_at += len(name_) + 1
    return header + body + table


def _from_deb(deb: Path) -> Modules | None:
    wanted = {"loop.ko": b"", "dummy.ko": b""}
    # A test helper reading a cached package, not part of the build: a plain pipe is fine here.
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.fspath(deb)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                base = Path(member.name).name
                if base in wanted and member.isfile() and "/kernel/drivers/" in member.name:
                    extracted = tar.extractfile(member)
                    wanted[base] = extracted.read() if extracted else b""
                if all(wanted.values()):
                    break
        proc.kill()
    if not all(wanted.values()):
        return None
    return Modules(wanted["loop.ko"], wanted["dummy.ko"], f"real modules from {deb.name}")


@pytest.fixture(scope="module")
def modules() -> Modules:
    for loop in sorted(Path("/lib/modules").glob("*/kernel/drivers/block/loop.ko")):
        dummy = loop.parents[1] / "net/dummy.ko"
        if dummy.is_file():
            return Modules(loop.read_bytes(), dummy.read_bytes(), f"real modules from {loop.parents[3]}")
    debs = sorted(Path("/var/cache/apt/archives").glob("linux-image-*-amd64_*.deb"))
    for pattern in ("*/linux-image-*-amd64_*.deb", "*/*/linux-image-*-amd64_*.deb"):
        debs += sorted(Path("/tmp").glob(pattern))
    for deb in debs:
        try:
            found = _from_deb(deb)
        except (OSError, tarfile.TarError):
            continue
        if found is not None:
            return found
    return Modules(_minimal_ko("loop"), _minimal_ko("dummy"), "minimal ELF modules (no kernel package cached)")


# --- inputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """What the orchestration would derive from the version (quirks): compression (≥1.8 zstd), usr/lib
    paths (≥1.10), schematic `extraInfo` (≥1.7), embedded config allowed (≥1.12)."""

    talos_version: str
    compression: Compression
    usr_lib: bool
    with_extra_info: bool
    with_embedded_config: bool
    minimal_modules: bool = False

    @property
    def lib(self) -> str:
        return "usr/lib" if self.usr_lib else "lib"


CASES = [
    Case("v1.12.0", "zstd", usr_lib=True, with_extra_info=True, with_embedded_config=True),
    Case("v1.10.3", "zstd", usr_lib=True, with_extra_info=True, with_embedded_config=False, minimal_modules=True),
    Case("v1.6.0", "xz", usr_lib=False, with_extra_info=False, with_embedded_config=False),
]


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


async def _original(tmp: Path, case: Case, mods: Modules) -> Path:
    """§4.1: compressed newc of `init` and `rootfs.sqsh` (zstd ≥1.8, xz before)."""
    rootfs, kdir = tmp / "talos-rootfs", tmp / "talos-rootfs" / case.lib / "modules" / K
    _write(kdir / "kernel/drivers/block/loop.ko", mods.base)
    _write(kdir / "modules.order", b"kernel/drivers/block/loop.ko\n")
    _write(kdir / "modules.builtin", b"")
    _write(rootfs / "usr/bin/init", b"#!/bin/true\n", 0o755)
    members = tmp / "initramfs-members"
    members.mkdir()
    await make_squashfs(rootfs, members / "rootfs.sqsh", SquashfsSpec(case.compression, EPOCH))
    _write(members / "init", b"#!/bin/true\n", 0o755)
    archive = tmp / "initramfs.cpio"
    with archive.open("wb") as f:
        cpio.write_newc(f, cpio.members_from_tree(members, ["init", "rootfs.sqsh"]), mtime=EPOCH)
    out = tmp / "initramfs.xz"
    if case.compression == "zstd":
        await run_tool(["zstd", "-T0", "-19", "-c", "--quiet", archive], stdout_path=out)
    else:
        out.write_bytes(lzma.compress(archive.read_bytes(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))
    return out


def _manifest(name: str, constraint: str = ">= v1.5.0") -> bytes:
    return (
        f"version: v1alpha1\nmetadata:\n  name: {name}\n  version: 1.0.0\n  author: Tests\n"
        f"  description: |\n    The {name} test extension.\n"
        f"  compatibility:\n    talos:\n      version: '{constraint}'\n"
    ).encode()


def _layer(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _extensions(tmp: Path, case: Case, mods: Modules) -> list[ExtensionSource]:
    fw = f"{case.lib}/firmware"
    tmp.mkdir()
    lower = tmp / "fw-lower.tar.gz"
    lower.write_bytes(
        _layer(
            {
                "manifest.yaml": _manifest("test-firmware"),
                f"rootfs/{fw}/intel-ucode/06-8e-09": b"INTEL-2",
                f"rootfs/{fw}/intel-ucode/06-55-04": b"INTEL-1",
                f"rootfs/{fw}/amd-ucode/microcode_amd_fam17h.bin": b"AMD-17",
                f"rootfs/{fw}/rtl_nic/rtl8125b-2.fw": b"NIC",
                "rootfs/usr/local/lib/obsolete": b"whited out above",
            }
        )
    )
    upper = tmp / "fw-upper.tar.gz"
    upper.write_bytes(_layer({"rootfs/usr/local/lib/.wh.obsolete": b"", f"rootfs/{fw}/i915/dmc.bin": b"GPU"}))

    kmod = tmp / "kmod"
    _write(kmod / "manifest.yaml", _manifest("test-kmod"))
    _write(kmod / f"rootfs/{case.lib}/modules/{K}/extras/dummy.ko", mods.extension)

    local = tmp / "local.tar"
    local_files = {"manifest.yaml": _manifest("test-local"), "rootfs/usr/local/bin/hello": b"#!/bin/sh\n"}
    with tarfile.open(local, "w") as tar:
        for name, data in local_files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith("hello") else 0o644
            tar.addfile(info, io.BytesIO(data))

    schematic = tmp / "schematic.tar"
    extra = canonical_yaml(SCHEMATIC) if case.with_extra_info else ""
    author = factory_author("http://127.0.0.1:8080/")
    schematic.write_bytes(schematic_tar(SchematicExtension(schematic_id(SCHEMATIC), author, extra)))
    sources: list[ExtensionSource] = [
        ExtensionLayers((lower, upper)),
        ExtensionDir(kmod),
        ExtensionTarball(local),
        ExtensionTarball(schematic),
    ]
    if case.with_embedded_config:
        (tmp / "embedded-config.tar").write_bytes(embedded_config_tar(CONFIG))
        sources.append(ExtensionTarball(tmp / "embedded-config.tar"))
    return sources


# --- consumers -------------------------------------------------------------------------------------


async def _cpio_list(archive: bytes) -> list[str]:
    result = await run_tool(["cpio", "-t", "--quiet"], stdin=archive)
    return result.stdout.decode().splitlines()


async def _lln(image: Path) -> list[tuple[str, str, str]]:
    """`unsquashfs -lln` → (mode string, uid/gid, path below the root)."""
    result = await run_tool(["unsquashfs", "-lln", image])
    rows = []
    for line in result.stdout.decode().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("squashfs-root"):
            rows.append((fields[0], fields[1], fields[5].removeprefix("squashfs-root").lstrip("/")))
    return rows


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.talos_version}-{c.compression}")
async def test_initramfs_with_extensions(tmp_path: Path, case: Case, modules: Modules) -> None:
    require_tools(*TOOLS)
    if case.minimal_modules:  # the fallback must work too, whatever this machine has cached
        modules = Modules(_minimal_ko("loop"), _minimal_ko("dummy"), "minimal ELF modules (forced)")
    original = await _original(tmp_path, case, modules)
    sources = tuple(_extensions(tmp_path / "inputs", case, modules))
    options = InitramfsOptions(case.talos_version, case.compression, case.usr_lib, EPOCH)
    outputs = []
    for run in ("a", "b"):  # §13: same inputs, same bytes
        (tmp_path / f"work-{run}").mkdir()
        out = tmp_path / f"initramfs-{run}.xz"
        await build_initramfs(InitramfsSpec(original, sources, options), tmp_path / f"work-{run}", out)
        outputs.append(out.read_bytes())
    assert hashlib.sha256(outputs[0]).digest() == hashlib.sha256(outputs[1]).digest()
    data, orig = outputs[0], original.read_bytes()

    # Segment 1: the uncompressed microcode cpio at offset 0, padded with NULs to 512.
    assert data.startswith(b"070701")
    prefix = cpio.newc_prefix_length(data)
    assert prefix % 512 == 0 and data[prefix - 1] == 0
    assert await _cpio_list(data[:prefix]) == [
        "kernel", "kernel/x86", "kernel/x86/microcode",
        "kernel/x86/microcode/AuthenticAMD.bin", "kernel/x86/microcode/GenuineIntel.bin",
    ]  # fmt: skip
    early = {e.name: e for e in cpio.iter_newc(io.BytesIO(data[:prefix]))}
    assert early["kernel/x86/microcode/GenuineIntel.bin"].data == b"INTEL-1INTEL-2"
    assert early["kernel/x86/microcode/AuthenticAMD.bin"].data == b"AMD-17"

    # Segment 2: the original, byte for byte.
    assert data[prefix : prefix + len(orig)] == orig

    # Segment 3: one compressed cpio, decompressed by the real CLI.
    tail = tmp_path / "tail"
    tail.write_bytes(data[prefix + len(orig) :])
    plain = tmp_path / "tail.cpio"
    tool = "zstd" if case.compression == "zstd" else "xz"
    await run_tool([tool, "-d", "-c", tail], stdout_path=plain)
    archive = plain.read_bytes()
    entries = list(cpio.iter_newc(io.BytesIO(archive)))
    assert {(e.uid, e.gid, e.mtime) for e in entries} == {(0, 0, EPOCH)}
    count = len(sources)
    fw = f"{case.lib}/firmware"
    fw_tree = [*([f"{case.lib.split('/')[0]}"] if case.usr_lib else []), case.lib, fw]
    fw_tree += [f"{fw}/amd-ucode", f"{fw}/i915", f"{fw}/i915/dmc.bin", f"{fw}/intel-ucode"]
    fw_tree += [f"{fw}/rtl_nic", f"{fw}/rtl_nic/rtl8125b-2.fw"]
    images = [f"{j}.sqsh" for j in range(count)]
    middle = ["modules.dep.sqsh", *fw_tree] if case.usr_lib else [*fw_tree, "modules.dep.sqsh"]
    assert await _cpio_list(archive) == [*images, "extensions.yaml", *middle]
    assert not any(name.startswith("kernel") for name in await _cpio_list(archive))

    unpacked = tmp_path / "unpacked"
    by_name = {e.name: e for e in entries}
    for name in [*images, "modules.dep.sqsh"]:
        _write(unpacked / name, by_name[name].data)

    # extensions.yaml: sorted directory names, then modules.dep; metadata = manifests.
    config = yaml.safe_load(by_name["extensions.yaml"].data)
    assert [layer["image"] for layer in config["layers"]] == [*images, "modules.dep.sqsh"]
    metas = [layer["metadata"] for layer in config["layers"]]
    assert [m["name"] for m in metas[:3]] == ["test-firmware", "test-kmod", "test-local"]
    assert metas[0]["description"] == "The test-firmware test extension.\n"
    assert metas[0]["compatibility"] == {"talos": {"version": ">= v1.5.0"}}
    schematic = metas[3]
    assert schematic["name"] == "schematic" and schematic["version"] == schematic_id(SCHEMATIC)
    assert schematic["author"] == "Image Factory (http://127.0.0.1:8080/)"
    if case.with_extra_info:
        assert schematic["extraInfo"] == canonical_yaml(SCHEMATIC)
    else:
        assert "extraInfo" not in schematic
    assert metas[-1] == {
        "name": "modules.dep",
        "version": K,
        "author": "Talos Machinery",
        "description": "Combined modules.dep for all extensions",
        "compatibility": {"talos": {"version": ""}},
    }

    # Every squashfs: the right compression, root-owned, firmware gone, whiteouts honoured.
    for name in [*images, "modules.dep.sqsh"]:
        info = (await run_tool(["unsquashfs", "-s", unpacked / name])).stdout.decode()
        if case.compression == "zstd":
            assert "Compression zstd" in info and "compression-level 18" in info
        else:
            assert "Compression xz" in info
        rows = await _lln(unpacked / name)
        assert {owner for _, owner, _ in rows} == {"0/0"}
        assert not any(path.startswith(fw) for *_, path in rows)
    firmware_paths = [path for *_, path in await _lln(unpacked / "0.sqsh")]
    assert "usr/local/lib" in firmware_paths and "usr/local/lib/obsolete" not in firmware_paths
    kmod_paths = {path: mode for mode, _, path in await _lln(unpacked / "1.sqsh")}
    assert f"{case.lib}/modules/{K}/extras/dummy.ko" in kmod_paths
    local_paths = {path: mode for mode, _, path in await _lln(unpacked / "2.sqsh")}
    assert local_paths["usr/local/bin/hello"] == "-rwxr-xr-x"
    schematic_paths = [path for *_, path in await _lln(unpacked / "3.sqsh")]
    assert f"usr/local/share/schematic/{schematic_id(SCHEMATIC)}" in schematic_paths

    if case.with_embedded_config:
        config_rows = {path: mode for mode, _, path in await _lln(unpacked / "4.sqsh")}
        assert config_rows["usr/local/etc/talos/config.yaml"] == "-r--------"
        xattrs = await run_tool(["rdsquashfs", "-x", "/usr/local/etc/talos/config.yaml", unpacked / "4.sqsh"])
        assert xattrs.stdout.decode().strip() == f"security.selinux={STATE_SELINUX_LABEL}"
        plain_file = await run_tool(["rdsquashfs", "-x", "/usr/local/bin/hello", unpacked / "2.sqsh"])
        assert plain_file.stdout.strip() == b""

    # modules.dep.sqsh: only <modules>/K/modules.*, and modules.dep knows the extension module.
    dep_rows = await _lln(unpacked / "modules.dep.sqsh")
    files = [path for mode, _, path in dep_rows if mode.startswith("-")]
    assert files and all(path.startswith(f"{case.lib}/modules/{K}/modules.") for path in files)
    assert f"{case.lib}/modules/{K}/modules.dep" in files
    extracted = tmp_path / "modules-dep"
    await run_tool(["unsquashfs", "-d", extracted, "-n", unpacked / "modules.dep.sqsh"])
    modules_dep = (extracted / case.lib / "modules" / K / "modules.dep").read_text()
    assert "extras/dummy.ko:" in modules_dep, modules.origin
    assert "kernel/drivers/block/loop.ko:" in modules_dep


async def test_cpio_writer_matches_gnu_cpio(tmp_path: Path) -> None:
    """§4.7 equivalence: our writer = `cpio -H newc --create --reproducible --quiet -R +0:+0`."""
    require_tools("cpio")
    tree = tmp_path / "tree"
    names = ["0.sqsh", "extensions.yaml", "usr", "usr/lib", "usr/lib/firmware", "usr/lib/firmware/a.fw", "z-link"]
    _write(tree / "0.sqsh", os.urandom(5000))
    _write(tree / "extensions.yaml", b"layers: []\n")
    _write(tree / "usr/lib/firmware/a.fw", b"fw", 0o600)
    (tree / "z-link").symlink_to("usr/lib/firmware/a.fw")
    for directory in ("usr", "usr/lib", "usr/lib/firmware"):
        (tree / directory).chmod(0o755)
    for name in names:
        os.utime(tree / name, (EPOCH, EPOCH), follow_symlinks=False)
    listing = "".join(f"{name}\n" for name in names).encode()
    gnu = await run_tool(
        ["cpio", "-H", "newc", "--create", "--reproducible", "--quiet", "-R", "+0:+0"], cwd=tree, stdin=listing
    )
    ours = io.BytesIO()
    cpio.write_newc(ours, cpio.members_from_tree(tree, names), mtime=EPOCH)
    assert ours.getvalue() == gnu.stdout
    assert stat.S_ISLNK(cpio.members_from_tree(tree, ["z-link"])[0].mode)

"""The real boot inputs: a Debian kernel with its modules, busybox, systemd-boot (amd64 only).

Debian's cloud kernel builds loop, squashfs and overlay as modules (`CONFIG_BLK_DEV_LOOP=m`,
`CONFIG_SQUASHFS=m`, `CONFIG_OVERLAY_FS=m` in its `boot/config-*`; zstd/xz decompression and
`CONFIG_DEVTMPFS` are built in), so the demo init loads them from the initramfs. Modules ship
uncompressed (`CONFIG_MODULE_COMPRESS_NONE`), so the kmod extension carries a plain `dummy.ko`.
The .deb has no modules.dep: its postinst runs depmod, so we run depmod on the unpacked tree to get
the real `modules.*` files that rootfs.sqsh carries (imager spec §4.5 reads them back).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.shared.tools import run_tool

from .cache import CacheDir
from .debs import download, extract, kernel_package

INIT_MODULES = ("loop", "squashfs", "overlay")  # what the demo init needs to mount extensions
KMOD_MODULE = "dummy"  # copied into the demo-kmod extension
_INFO = "info.json"
_FORMAT = 2  # bump when the cached layout changes; older kernel dirs are rebuilt


@dataclass(frozen=True)
class KernelAssets:
    kver: str  # "6.1.0-56-cloud-amd64"
    root: Path  # <cache>/kernel/<kver>

    @property
    def vmlinuz(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def modules(self) -> Path:
        """A subset of lib/modules/<kver>: every `modules.*` file plus the .ko files below."""
        return self.root / "modules"

    def _info(self) -> dict[str, list[str] | str]:
        info: dict[str, list[str] | str] = json.loads((self.root / _INFO).read_text())
        return info

    @property
    def load_order(self) -> tuple[str, ...]:
        """Module paths relative to `modules`, dependencies first, as the init must insmod them."""
        return tuple(self._info()["load_order"])

    @property
    def rootfs_modules(self) -> tuple[str, ...]:
        """What rootfs.sqsh carries: the init's modules and whatever the kmod module depends on."""
        return tuple(self._info()["rootfs"])

    @property
    def kmod(self) -> str:
        """Relative path of the module the kmod extension ships (kernel/drivers/net/dummy.ko)."""
        return str(self._info()["kmod"])


@dataclass(frozen=True)
class BootFiles:
    kernel: KernelAssets
    busybox: Path
    sd_boot: Path  # systemd-bootx64.efi
    sd_stub: Path  # linuxx64.efi.stub


async def prepare(cache: CacheDir) -> BootFiles:
    kernel = await _kernel(cache)
    busybox = await _copy_from_deb(cache, "busybox-static", {"bin/busybox": "busybox"})
    efi = "usr/lib/systemd/boot/efi"
    # Talos ≥ 1.10 UKIs carry `.profile` sections, which systemd-stub understands from 257 on; Debian 12
    # ships 252, so systemd-boot and the stub come from Debian 13 (imager spec §6.1).
    sd = await _copy_from_deb(
        cache,
        "systemd-boot-efi",
        {
            f"{efi}/systemd-bootx64.efi": "systemd-bootx64.trixie.efi",
            f"{efi}/linuxx64.efi.stub": "linuxx64.trixie.efi.stub",
        },
        suite="trixie",
    )
    return BootFiles(kernel, busybox["busybox"], sd["systemd-bootx64.trixie.efi"], sd["linuxx64.trixie.efi.stub"])


async def _copy_from_deb(
    cache: CacheDir, package: str, files: dict[str, str], *, suite: str | None = None
) -> dict[str, Path]:
    targets = {name: cache.boot / name for name in files.values()}
    if all(t.is_file() for t in targets.values()):
        return targets
    deb = await download(cache, package, suite=suite)
    with cache.scratch() as tmp:
        root = await extract(deb, Path(tmp) / "x")
        for src, name in files.items():
            cache.write_atomic(targets[name], (root / src).read_bytes())
            targets[name].chmod(0o755)
    return targets


async def _kernel(cache: CacheDir) -> KernelAssets:
    package = await kernel_package(cache)
    kver = package.removeprefix("linux-image-")
    assets = KernelAssets(kver, cache.kernel_dir(kver))
    if _cached_format(assets.root / _INFO) == _FORMAT:
        return assets
    deb = await download(cache, package)
    with cache.scratch() as tmp:
        unpacked = await extract(deb, Path(tmp) / "x")
        tree = unpacked / "lib/modules" / kver
        # An empty config keeps the host's /etc/depmod.d out of the result.
        (Path(tmp) / "depmod.conf").write_text("")
        await run_tool(["depmod", "-b", unpacked, "-C", Path(tmp) / "depmod.conf", kver], timeout=300)
        deps = _parse_modules_dep((tree / "modules.dep").read_text())
        load_order = _closure(deps, INIT_MODULES)
        kmod = _path_of(deps, KMOD_MODULE)
        stage = Path(tmp) / "stage"
        (stage / "modules").mkdir(parents=True)
        shutil.copyfile(unpacked / "boot" / f"vmlinuz-{kver}", stage / "vmlinuz")
        shutil.copyfile(unpacked / "boot" / f"config-{kver}", stage / "config")
        for path in sorted(tree.glob("modules.*")):
            shutil.copyfile(path, stage / "modules" / path.name)
        # dummy's own dependencies must already be in the root, like for any module an extension adds.
        rootfs = sorted({*load_order, *_closure(deps, (KMOD_MODULE,))} - {kmod})
        for rel in [*rootfs, kmod]:
            (stage / "modules" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / rel, stage / "modules" / rel)
        info = {"format": _FORMAT, "kver": kver, "package": deb.name, "kmod": kmod}
        info |= {"load_order": list(load_order), "rootfs": rootfs}
        (stage / _INFO).write_text(json.dumps(info, indent=2))
        assets.root.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(assets.root, ignore_errors=True)
        stage.rename(assets.root)
    return assets


def _cached_format(info: Path) -> int | None:
    try:
        value = json.loads(info.read_text()).get("format")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def _module_name(path: str) -> str:
    """`kernel/fs/squashfs/squashfs.ko[.xz]` -> `squashfs` (modprobe treats - and _ alike)."""
    return path.rsplit("/", 1)[-1].split(".ko", 1)[0].replace("-", "_")


def _parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (path, dependency paths) from depmod's `path: dep dep …` lines."""
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[_module_name(path)] = (path, rest.split())
    return deps


def _path_of(deps: dict[str, tuple[str, list[str]]], name: str) -> str:
    if name not in deps:
        raise RuntimeError(f"kernel module {name} is not in modules.dep (built in or missing?)")
    return deps[name][0]


def _closure(deps: dict[str, tuple[str, list[str]]], names: tuple[str, ...]) -> tuple[str, ...]:
    """Module paths in load order: every dependency before the module that needs it."""
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[_module_name(path)][1]:
            visit(dep)
        order.append(path)

    for name in names:
        visit(_path_of(deps, name))
    return tuple(order)

"""Boot assets of one Talos version: `initramfs.xz` (+ its rootfs.sqsh) and the arm64 placeholders.

amd64 `initramfs.xz` is, like real Talos (imager spec §1.1, §4.1), one compressed newc cpio holding
`init` and `rootfs.sqsh`, compressed with zstd from 1.8 on (despite the name) and xz before. Unlike
Talos, `init` is a busybox script (init.sh) and the cpio also carries busybox, `/dev/console`, and the
loop/squashfs/overlay modules the script loads from `demo/modules/`. rootfs.sqsh carries
`<lib>/modules/<kver>/` with the kernel's real `modules.*` files (depmod output) and those same
modules, because the factory's modules.dep step (imager spec §4.5) unsquashfs-es it and runs depmod.

arm64 assets are placeholders (Debian's arm64 packages are not fetchable without adding a foreign
architecture): `vmlinuz` is a 64-byte arm64 Image header plus text, the EFI files are the amd64
ones (valid PE files of the wrong machine type), and `initramfs.xz` is a valid compressed cpio with a
stub `init` and the same rootfs.sqsh, so structural steps (cpio walk, unsquashfs, depmod) work.
"""

from __future__ import annotations

import struct
from importlib import resources

from .cache import CacheDir
from .compress import squashfs_compression, squashfs_from_tar, xz, zstd
from .cpio import Member, newc_archive, with_parents
from .kernel import BootFiles, KernelAssets
from .layers import Entry, tar_bytes
from .model import TalosVersion


def _resource(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


def os_release(version: TalosVersion) -> bytes:
    return (
        f'NAME="Talos"\nID=talos\nVERSION_ID={version.tag}\nPRETTY_NAME="Talos ({version.tag}, Image Factory demo)"\n'
    ).encode()


def rootfs_entries(version: TalosVersion, kernel: KernelAssets) -> list[Entry]:
    """The demo root: os-release plus the module tree (the kmod extension's module left out)."""
    base = f"{version.lib_prefix}/modules/{kernel.kver}"
    entries = [Entry.file("etc/os-release", os_release(version))]
    for path in sorted(kernel.modules.glob("modules.*")):
        entries.append(Entry.file(f"{base}/{path.name}", path.read_bytes()))
    for rel in kernel.rootfs_modules:
        entries.append(Entry.file(f"{base}/{rel}", (kernel.modules / rel).read_bytes()))
    return entries


async def rootfs_sqsh(cache: CacheDir, version: TalosVersion, kernel: KernelAssets, epoch: int) -> bytes:
    tar = tar_bytes(rootfs_entries(version, kernel), epoch)
    return await squashfs_from_tar(cache, tar, squashfs_compression(version.zstd_initramfs), epoch)


async def compress_initramfs(cache: CacheDir, version: TalosVersion, cpio: bytes) -> bytes:
    return await zstd(cache, cpio) if version.zstd_initramfs else xz(cpio)


def amd64_members(version: TalosVersion, boot: BootFiles, rootfs: bytes) -> list[Member]:
    kernel = boot.kernel
    members = [
        Member.file("init", _resource("init.sh"), 0o755),
        Member.file("rootfs.sqsh", rootfs),
        Member.file("bin/busybox", boot.busybox.read_bytes(), 0o755),
        Member.char_device("dev/console", 5, 1),
        Member.directory("proc"),
        Member.directory("sys"),
        Member.directory("tmp", 0o1777),
        Member.file("demo/release", f"{version.tag} amd64 {kernel.kver}".encode()),
        Member.file("demo/extensions.awk", _resource("extensions.awk")),
        Member.file("demo/modules.load", "".join(f"{rel}\n" for rel in kernel.load_order).encode()),
    ]
    members += [Member.file(f"demo/modules/{rel}", (kernel.modules / rel).read_bytes()) for rel in kernel.load_order]
    return with_parents(members)


def arm64_members(version: TalosVersion, rootfs: bytes) -> list[Member]:
    stub = f"#!/bin/sh\necho 'Image Factory demo {version.tag}: arm64 init is a placeholder'\n".encode()
    return with_parents(
        [
            Member.file("init", stub, 0o755),
            Member.file("rootfs.sqsh", rootfs),
            Member.file("demo/release", f"{version.tag} arm64 placeholder".encode()),
        ]
    )


def arm64_kernel_placeholder(version: TalosVersion) -> bytes:
    """An arm64 `Image` header (Documentation/arch/arm64/booting.rst): magic "ARM\\x64" at 0x38."""
    text = f"Image Factory demo {version.tag}: placeholder arm64 kernel\n".encode()
    header = struct.pack("<IIQQQQQQII", 0, 0, 0, 64 + len(text), 0xA, 0, 0, 0, 0x644D5241, 0)
    return header + text


async def boot_assets(cache: CacheDir, version: TalosVersion, boot: BootFiles, epoch: int) -> dict[str, bytes]:
    """`usr/install/<arch>/<file>` -> bytes, for both arches (the imager image carries both)."""
    rootfs = await rootfs_sqsh(cache, version, boot.kernel, epoch)
    amd64_cpio = newc_archive(amd64_members(version, boot, rootfs), epoch)
    amd64_initramfs = await compress_initramfs(cache, version, amd64_cpio)
    arm64_initramfs = await compress_initramfs(cache, version, newc_archive(arm64_members(version, rootfs), epoch))
    sd_boot, sd_stub = boot.sd_boot.read_bytes(), boot.sd_stub.read_bytes()
    return {
        "usr/install/amd64/vmlinuz": boot.kernel.vmlinuz.read_bytes(),
        "usr/install/amd64/initramfs.xz": amd64_initramfs,
        "usr/install/amd64/systemd-boot.efi": sd_boot,
        "usr/install/amd64/systemd-stub.efi": sd_stub,
        "usr/install/arm64/vmlinuz": arm64_kernel_placeholder(version),
        "usr/install/arm64/initramfs.xz": arm64_initramfs,
        "usr/install/arm64/systemd-boot.efi": sd_boot,
        "usr/install/arm64/systemd-stub.efi": sd_stub,
    }

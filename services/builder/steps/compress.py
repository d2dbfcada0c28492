"""Post-processing of disk images (imager spec §7.9) and OVA packaging (§7.8 `ova`).

Each step works in place like Talos' `post.go`: `<p>` becomes `<p>.xz`/`.zst`/`.gz`/`.tar.gz`, the input
goes away. xz and zstd run the exact upstream argv (checked: zstd -T1/2/4 and xz -T0/2/4 give the same bytes;
only xz's single-threaded -T1 mode differs, which -T0 does not pick on multi-core hosts).
`initramfs_codec` has nothing to reuse here: its xz is in-process `lzma` with CRC32 and preset 0e (what the
kernel's decoder needs), single-threaded, while disk images get `xz -0 -T0` (CRC64, multi-threaded for
multi-GiB files), and its zstd streams to stdout instead of `--rm -o`. gzip is Python's `gzip` at level 6
with mtime 0 and no name (spec §7.9 allows it; Debian 12 has no pigz by default). The GCP tarball keeps GNU
tar for `--sparse` (only the disk's data extents are archived, so an 8 GiB image with 100 MiB of data gzips
in seconds).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import IO, Final

from services.builder.enums import Compression
from services.shared.tools import run_tool

MIB: Final = 1024 * 1024
GCP_MEMBER: Final = "disk.raw"
OVA_MEMBERS: Final = ("disk.ovf", "disk.mf", "disk.vmdk")
_TIMEOUT: Final = 3600


def xz_argv(path: Path) -> list[str]:
    return ["xz", "-0", "-f", "-T", "0", os.fspath(path)]


def zstd_argv(path: Path) -> list[str]:
    return ["zstd", "-T0", "--rm", "-18", "--quiet", "--force", "-o", f"{os.fspath(path)}.zst", os.fspath(path)]


def gcp_tar_argv(directory: Path, tar: Path, epoch: int) -> list[str]:
    """§7.9 `.tar.gz`: the tar half (gzip follows in Python instead of a pipe into pigz)."""
    return [
        "tar", "-cf", os.fspath(tar), "-C", os.fspath(directory),
        "--sparse", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", f"--mtime=@{epoch}",
        GCP_MEMBER,
    ]  # fmt: skip


def gzip_file(src: Path, dst: Path) -> None:
    """Level 6, mtime 0, no file name: the same bytes for the same input (blocking)."""
    with src.open("rb") as fin, dst.open("wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as fout:
        shutil.copyfileobj(fin, fout, MIB)


async def post_process(path: Path, compression: Compression, *, source_date_epoch: int) -> Path:
    """Apply `outFormat` to `path` in place; returns the new path (`path` itself for raw)."""
    match compression:
        case Compression.RAW:
            return path
        case Compression.XZ:
            await run_tool(xz_argv(path), timeout=_TIMEOUT)
        case Compression.ZST:
            await run_tool(zstd_argv(path), timeout=_TIMEOUT)
        case Compression.GZ:
            await asyncio.to_thread(gzip_file, path, _suffixed(path, ".gz"))
            await asyncio.to_thread(path.unlink)
        case Compression.TAR_GZ:
            await _gcp_tarball(path, source_date_epoch)
    return _suffixed(path, compression.suffix)


async def _gcp_tarball(path: Path, epoch: int) -> None:
    directory = path.parent / f"{path.name}.tar.d"
    await asyncio.to_thread(directory.mkdir)
    await asyncio.to_thread(path.rename, directory / GCP_MEMBER)
    tar = directory / "disk.tar"
    await run_tool(gcp_tar_argv(directory, tar, epoch), timeout=_TIMEOUT)
    await asyncio.to_thread(gzip_file, tar, _suffixed(path, ".tar.gz"))
    await asyncio.to_thread(shutil.rmtree, directory)


def _suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def render_ovf(vmdk_size: int, disk_size: int) -> str:
    """Our own OVF 1.x descriptor with the fields §7.8 lists (Talos' template is VMware-ovftool output; this
    keeps its settings, not its bytes): one streamOptimized disk of `disk_size / 2^20` MiB on a VirtualSCSI
    controller, 2 vCPUs, 2048 MB, a VmxNet3 NIC on "VM Network", the `talos.config` guestinfo property."""
    item = "      <Item>\n{}      </Item>\n"

    def rasd(**fields: str) -> str:
        return item.format("".join(f"        <rasd:{k}>{v}</rasd:{k}>\n" for k, v in fields.items()))

    hardware = (
        rasd(AllocationUnits="hertz * 10^6", Description="Number of Virtual CPUs", ElementName="2 virtual CPU(s)",
             InstanceID="1", ResourceType="3", VirtualQuantity="2")
        + rasd(AllocationUnits="byte * 2^20", Description="Memory Size", ElementName="2048MB of memory",
               InstanceID="2", ResourceType="4", VirtualQuantity="2048")
        + rasd(Address="0", Description="SCSI Controller", ElementName="scsiController0", InstanceID="3",
               ResourceSubType="VirtualSCSI", ResourceType="6")
        + rasd(AddressOnParent="0", ElementName="disk0", HostResource="ovf:/disk/vmdisk1", InstanceID="4",
               Parent="3", ResourceType="17")
        + rasd(AddressOnParent="2", AutomaticAllocation="true", Connection="VM Network",
               Description="VmxNet3 ethernet adapter on &quot;VM Network&quot;", ElementName="ethernet0",
               InstanceID="5", ResourceSubType="VmxNet3", ResourceType="10")
    )  # fmt: skip
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" \
xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" \
xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" \
xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="disk.vmdk" ovf:id="file1" ovf:size="{vmdk_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{disk_size // MIB}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" \
ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="talos">
    <Info>A virtual machine</Info>
    <Name>talos</Name>
    <ProductSection ovf:required="false">
      <Info>Talos Virtual Appliance</Info>
      <Property ovf:key="talos.config" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Talos config data</Label>
        <Description>Inline Talos config</Description>
      </Property>
    </ProductSection>
    <OperatingSystemSection ovf:id="101" vmw:osType="other3xLinux64Guest">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection ovf:transport="com.vmware.guestInfo">
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>talos</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType>
      </System>
{hardware}      <vmw:ExtraConfig ovf:required="false" vmw:key="disk.EnableUUID" vmw:value="true"/>
      <vmw:ExtraConfig ovf:required="false" vmw:key="nvram" vmw:value="talos.nvram"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def render_mf(vmdk_sha256: str, ovf_sha256: str) -> str:
    """§7.8 `disk.mf`: vmdk line first, then ovf."""
    return f"SHA256(disk.vmdk)= {vmdk_sha256}\nSHA256(disk.ovf)= {ovf_sha256}\n"


def package_ova(vmdk: Path, out: Path, *, disk_size: int, source_date_epoch: int) -> None:
    """Write the OVA tar (`disk.ovf`, `disk.mf`, `disk.vmdk`, in that order) with fixed owners and mtimes
    (blocking). Python's tarfile instead of `tar -cvf`: member metadata must not depend on the scratch dir."""
    ovf = render_ovf(vmdk.stat().st_size, disk_size).encode()
    digest = hashlib.sha256()
    with vmdk.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    mf = render_mf(digest.hexdigest(), hashlib.sha256(ovf).hexdigest()).encode()
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("disk.ovf", ovf), ("disk.mf", mf)):
            _add(tar, name, len(data), source_date_epoch, io.BytesIO(data))
        with vmdk.open("rb") as f:
            _add(tar, "disk.vmdk", vmdk.stat().st_size, source_date_epoch, f)


def _add(tar: tarfile.TarFile, name: str, size: int, epoch: int, fileobj: IO[bytes]) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, epoch, 0o644, 0, 0
    tar.addfile(info, fileobj)

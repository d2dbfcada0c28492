"""Disk formats and post-processing: qemu-img argv, OVA contents, compressions (imager spec §7.8, §7.9)."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from services.builder.enums import Compression, ImageFormat
from services.builder.steps import compress, qemu_img
from tests.unit.builder_disk.conftest import FakeTools

MIB = 1024 * 1024
EPOCH = 1559424892
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"
VMW = "{http://www.vmware.com/schema/ovf}"


@pytest.mark.parametrize(
    ("disk_format", "options", "tail"),
    [
        (ImageFormat.QCOW2, "cluster_size=8k", ["-O", "qcow2", "-o", "cluster_size=8k"]),
        (ImageFormat.VHD, "subformat=fixed,force_size", ["-O", "vpc", "-o", "subformat=fixed,force_size"]),
        (ImageFormat.QCOW2, "", ["-O", "qcow2"]),  # §14.14: no `-o ""`
        (ImageFormat.OVA, qemu_img.VMDK_OPTIONS, ["-O", "vmdk", "-o", "subformat=streamOptimized"]),
    ],
)
def test_convert_argv(disk_format: ImageFormat, options: str, tail: list[str]) -> None:
    argv = qemu_img.convert_argv(Path("/w/d.in"), Path("/w/d"), qemu_img.qemu_format(disk_format), options)
    assert argv == ["qemu-img", "convert", "-f", "raw", *tail, "/w/d.in", "/w/d"]


def test_bad_conversions() -> None:
    with pytest.raises(ValueError, match="no conversion"):
        qemu_img.qemu_format(ImageFormat.RAW)
    with pytest.raises(ValueError, match="unsupported"):
        qemu_img.convert_argv(Path("a"), Path("b"), "vdi")
    assert qemu_img.info_argv(Path("/w/d.vhd"), "vpc") == ["qemu-img", "info", "-f", "vpc", "--output=json", "/w/d.vhd"]


async def test_convert_in_place(tmp_path: Path, fake_tools: FakeTools) -> None:
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"raw")
    fake_tools.handlers["qemu-img"] = lambda argv: Path(argv[-1]).write_bytes(b"qcow2")
    await qemu_img.convert_in_place(disk, ImageFormat.QCOW2, "cluster_size=8k")
    assert fake_tools.argvs() == [qemu_img.convert_argv(tmp_path / "disk.raw.in", disk, "qcow2", "cluster_size=8k")]
    assert disk.read_bytes() == b"qcow2" and not (tmp_path / "disk.raw.in").exists()


def test_post_processing_argv() -> None:
    p = Path("/w/metal-amd64.raw")
    assert compress.xz_argv(p) == ["xz", "-0", "-f", "-T", "0", "/w/metal-amd64.raw"]
    assert compress.zstd_argv(p) == [
        "zstd", "-T0", "--rm", "-18", "--quiet", "--force", "-o", "/w/metal-amd64.raw.zst", "/w/metal-amd64.raw",
    ]  # fmt: skip
    assert compress.gcp_tar_argv(Path("/w/d"), Path("/w/d/disk.tar"), EPOCH) == [
        "tar", "-cf", "/w/d/disk.tar", "-C", "/w/d", "--sparse", "--sort=name", "--owner=0", "--group=0",
        "--numeric-owner", "--mtime=@1559424892", "disk.raw",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("compression", "tool", "suffix"),
    [(Compression.XZ, "xz", ".xz"), (Compression.ZST, "zstd", ".zst"), (Compression.RAW, None, "")],
)
async def test_post_process_tools(
    tmp_path: Path, fake_tools: FakeTools, compression: Compression, tool: str | None, suffix: str
) -> None:
    disk = tmp_path / "aws-amd64.raw"
    disk.write_bytes(b"x")
    result = await compress.post_process(disk, compression, source_date_epoch=EPOCH)
    assert result == tmp_path / f"aws-amd64.raw{suffix}"
    assert fake_tools.tools() == ([tool] if tool else [])


async def test_gzip_is_deterministic(tmp_path: Path, fake_tools: FakeTools) -> None:
    disk = tmp_path / "do.raw"
    disk.write_bytes(b"disk" * 1000)
    result = await compress.post_process(disk, Compression.GZ, source_date_epoch=EPOCH)
    data = result.read_bytes()
    # gzip header: deflate, no flags (no name), mtime 0
    assert data[:8] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
    assert gzip.decompress(data) == b"disk" * 1000 and not disk.exists() and fake_tools.calls == []


async def test_gcp_tarball_flow(tmp_path: Path, fake_tools: FakeTools) -> None:
    disk = tmp_path / "gcp-amd64.raw"
    disk.write_bytes(b"raw")

    def tar(argv: list[str]) -> None:
        assert (Path(argv[argv.index("-C") + 1]) / "disk.raw").read_bytes() == b"raw"
        Path(argv[2]).write_bytes(b"tarball")

    fake_tools.handlers["tar"] = tar
    result = await compress.post_process(disk, Compression.TAR_GZ, source_date_epoch=EPOCH)
    assert result == tmp_path / "gcp-amd64.raw.tar.gz"
    assert gzip.decompress(result.read_bytes()) == b"tarball"
    assert not disk.exists() and not (tmp_path / "gcp-amd64.raw.tar.d").exists()


def test_ovf_fields() -> None:
    root = ET.fromstring(compress.render_ovf(12345, 8192 * MIB))
    assert root.find(f"{OVF}References/{OVF}File").attrib == {  # type: ignore[union-attr]
        f"{OVF}href": "disk.vmdk", f"{OVF}id": "file1", f"{OVF}size": "12345",
    }  # fmt: skip
    disk = root.find(f"{OVF}DiskSection/{OVF}Disk")
    assert disk is not None and disk.get(f"{OVF}capacity") == "8192"
    assert disk.get(f"{OVF}capacityAllocationUnits") == "byte * 2^20"
    assert disk.get(f"{OVF}format") == "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
    system = root.find(f"{OVF}VirtualSystem")
    assert system is not None and system.findtext(f"{OVF}Name") == "talos"
    prop = system.find(f"{OVF}ProductSection/{OVF}Property")
    assert prop is not None and prop.get(f"{OVF}key") == "talos.config" and prop.get(f"{OVF}value") == ""
    os_section = system.find(f"{OVF}OperatingSystemSection")
    assert os_section is not None and os_section.get(f"{VMW}osType") == "other3xLinux64Guest"
    hardware = system.find(f"{OVF}VirtualHardwareSection")
    assert hardware is not None and hardware.get(f"{OVF}transport") == "com.vmware.guestInfo"
    items = {i.findtext(f"{RASD}ResourceType"): i for i in hardware.findall(f"{OVF}Item")}
    assert items["3"].findtext(f"{RASD}VirtualQuantity") == "2"
    assert items["4"].findtext(f"{RASD}VirtualQuantity") == "2048"
    assert items["6"].findtext(f"{RASD}ResourceSubType") == "VirtualSCSI"
    assert items["17"].findtext(f"{RASD}HostResource") == "ovf:/disk/vmdisk1"
    assert items["10"].findtext(f"{RASD}ResourceSubType") == "VmxNet3"
    assert items["10"].findtext(f"{RASD}Connection") == "VM Network"
    extra = {e.get(f"{VMW}key"): e.get(f"{VMW}value") for e in hardware.findall(f"{VMW}ExtraConfig")}
    assert extra == {"disk.EnableUUID": "true", "nvram": "talos.nvram"}
    assert hardware.findtext(f"{OVF}System/{{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
                             f"CIM_VirtualSystemSettingData}}VirtualSystemType") == "vmx-15"  # fmt: skip


def test_package_ova(tmp_path: Path) -> None:
    vmdk, out = tmp_path / "disk.vmdk", tmp_path / "vmware-amd64.ova"
    vmdk.write_bytes(b"KDMV" + bytes(5000))
    compress.package_ova(vmdk, out, disk_size=8192 * MIB, source_date_epoch=EPOCH)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["disk.ovf", "disk.mf", "disk.vmdk"]
        assert {(m.mtime, m.uid, m.gid, m.mode, m.uname, m.gname) for m in members} == {(EPOCH, 0, 0, 0o644, "", "")}
        files = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert files["disk.vmdk"] == vmdk.read_bytes()
    assert files["disk.ovf"].decode() == compress.render_ovf(5004, 8192 * MIB)
    sha = {name: hashlib.sha256(files[name]).hexdigest() for name in ("disk.vmdk", "disk.ovf")}
    assert files["disk.mf"].decode() == f"SHA256(disk.vmdk)= {sha['disk.vmdk']}\nSHA256(disk.ovf)= {sha['disk.ovf']}\n"
    first = out.read_bytes()
    compress.package_ova(vmdk, out, disk_size=8192 * MIB, source_date_epoch=EPOCH)
    assert out.read_bytes() == first

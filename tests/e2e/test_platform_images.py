"""Every platform's default disk image (factory spec §3.1) downloads through the gateway and passes the
checks of the tools that consume it (issue 7).

Platforms already covered by a stronger test elsewhere are listed in `COVERED_ELSEWHERE` (booted in qemu,
or checked format by format); every other platform with a default disk image is checked here, and the
two lists together must name them all, so a platform added to the table cannot go unchecked.
"""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
from pathlib import Path
from typing import Protocol

import pytest

from services.builder.enums import Arch
from services.builder.platforms import DISK_DEFAULTS, PLATFORMS
from services.catalog.versions import parse
from services.mesh.supervisor import Mesh
from tests.e2e.test_boot_initramfs import SCHEMATIC, create_schematic, download
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry]
VERSION = parse("1.12.1")
COVERED_ELSEWHERE = {
    "aws": "test_boot_disk_formats.py boots aws-amd64.raw.xz",
    "nocloud": "test_boot_disk_formats.py boots nocloud-amd64.raw.xz",
    "azure": "test_boot_disk_formats.py boots azure-amd64.vhd.xz",
    "gcp": "test_boot_disk.py checks gcp-amd64.raw.tar.gz",
    "vmware": "test_boot_disk.py checks vmware-amd64.ova",
    "oracle": "test_boot_disk.py checks oracle-amd64.qcow2",
}
WITH_DISK_IMAGES = {
    info.platform.value: info
    for info in PLATFORMS
    if info.disk_image_suffix and Arch.AMD64 in info.archs and info.supported(VERSION)
}
CHECKED_HERE = sorted(set(WITH_DISK_IMAGES) - set(COVERED_ELSEWHERE))
PARTITIONS = ["EFI", "BIOS", "BOOT", "META"]  # dual-boot, amd64, Talos >= 1.10 (imager §7.3)
MIB = 1024 * 1024
BOOT_SIZE = 2000 * MIB  # Talos >= 1.11 (imager §2.5)


def final_disk_size(platform_default: int) -> int:
    """Imager §2.2: `diskSize += bootSize - 1000 MiB`, and for dual-boot `+= 1 MiB + bootSize`."""
    return platform_default + (BOOT_SIZE - 1000 * MIB) + (MIB + BOOT_SIZE)


HEAD_BYTES = 1024 * 1024  # the primary GPT and more


def test_every_platform_with_a_disk_image_is_checked() -> None:
    assert set(COVERED_ELSEWHERE) <= set(WITH_DISK_IMAGES)
    assert set(CHECKED_HERE) | set(COVERED_ELSEWHERE) == set(WITH_DISK_IMAGES)


@pytest.fixture(scope="module")
def schematic(demo_mesh: Mesh) -> str:
    return create_schematic(demo_mesh, SCHEMATIC)


@pytest.mark.parametrize("platform", CHECKED_HERE)
def test_default_disk_image(demo_mesh: Mesh, schematic: str, platform: str, tmp_path: Path) -> None:
    info = WITH_DISK_IMAGES[platform]
    expected_size = final_disk_size(DISK_DEFAULTS[info.platform].disk_size)
    name = f"{platform}-amd64.{info.disk_image_suffix}"
    image = download(f"{demo_mesh.url}/image/{schematic}/{VERSION.tag}/{name}", tmp_path / name)
    suffix = info.disk_image_suffix
    if suffix == "qcow2":
        require_tools("qemu-img")
        described = json.loads(tool("qemu-img", "info", "--output=json", "-f", "qcow2", str(image)))
        assert described["virtual-size"] == expected_size
        options = DISK_DEFAULTS[info.platform].disk_format_options
        assert described["cluster-size"] == (8192 if "cluster_size=8k" in options else 65536)
        tool("qemu-img", "check", "-f", "qcow2", str(image))
        return
    head, size = stream_head_and_size(image, suffix)
    assert size == (expected_size % 2**32 if suffix == "raw.gz" else expected_size)
    # The primary GPT, read by sfdisk from the image's first MiB in a sparse file of the full size.
    probe = tmp_path / "head.raw"
    with probe.open("wb") as out:
        out.write(head)
        out.truncate(expected_size)
    table = json.loads(tool("sfdisk", "--json", str(probe)))["partitiontable"]
    assert table["label"] == "gpt"
    assert [p["name"] for p in table["partitions"]] == PARTITIONS


def stream_head_and_size(image: Path, suffix: str) -> tuple[bytes, int]:
    """The first MiB of the decompressed image and its size (for gzip, modulo 2^32: what its trailer
    keeps), after the format's own integrity check."""
    if suffix == "raw.xz":
        require_tools("xz")
        tool("xz", "-t", str(image))
        listed = tool("xz", "--robot", "--list", str(image))
        size = int(next(line for line in listed.splitlines() if line.startswith("totals")).split("\t")[4])
        with lzma.open(image) as stream:
            return stream.read(HEAD_BYTES), size
    if suffix == "raw.zst":
        require_tools("zstd")
        tool("zstd", "-t", "-q", str(image))
        with subprocess.Popen(["zstd", "-dc", str(image)], stdout=subprocess.PIPE) as unpack:
            assert unpack.stdout is not None
            head, size = read_head_and_count(unpack.stdout)
        assert unpack.returncode == 0
        return head, size
    assert suffix == "raw.gz", suffix
    require_tools("gzip")
    tool("gzip", "-t", str(image))  # the CRC and the length (mod 2^32) of the whole stream
    with gzip.open(image) as stream:
        head = stream.read(HEAD_BYTES)
    with image.open("rb") as packed:
        packed.seek(-4, 2)
        length_mod_4g = int.from_bytes(packed.read(4), "little")  # ISIZE, RFC 1952
    return head, length_mod_4g


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_head_and_count(stream: Readable) -> tuple[bytes, int]:
    head = stream.read(HEAD_BYTES)
    size = len(head)
    while chunk := stream.read(16 * 1024 * 1024):
        size += len(chunk)
    return head, size


def tool(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (argv, done.stderr)
    return done.stdout

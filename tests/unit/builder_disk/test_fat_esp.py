"""The disk-image ESP options added to `fat.FatSpec` (imager spec §7.3 `mkfs.vfat … [-S S]`, §7.7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.builder.steps.fat import FatSpec, mkfs_argv

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("spec", "tail"),
    [
        (FatSpec("EFI", 100 * MIB, sectors_per_cluster=0), []),  # mkfs.vfat picks the cluster size
        (FatSpec("EFI", 2101 * MIB, sectors_per_cluster=0, sector_size=4096), ["-S", "4096"]),
        (FatSpec("EFI", 40 * MIB, sectors_per_cluster=2, sector_size=512), ["-s", "2", "-S", "512"]),
        (FatSpec("EFI", 40 * MIB), ["-s", "1"]),  # the ISO's efiboot.img, unchanged
    ],
)
def test_esp_mkfs_argv(spec: FatSpec, tail: list[str]) -> None:
    assert mkfs_argv(spec, Path("/w/EFI.img")) == ["mkfs.vfat", "-F", "32", "-n", "EFI", "--invariant", *tail,
                                                   "/w/EFI.img"]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs", [{"sector_size": 1000}, {"sector_size": 4096, "size": 100 * MIB + 512}, {"sectors_per_cluster": 256}]
)
def test_bad_esp_specs(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        FatSpec(**({"label": "EFI", "size": 100 * MIB} | kwargs))  # type: ignore[arg-type]

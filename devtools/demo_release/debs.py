"""Debian packages fetched with `apt-get download` into the cache, never installed.

The boot pieces of the demo come from Debian 12 packages: the kernel (`linux-image-*-cloud-amd64`),
`busybox-static` and `systemd-boot-efi`. Only amd64 is fetched: Debian's arm64 packages need
`dpkg --add-architecture`, which a dev tool must not do to the host.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from services.shared.tools import run_tool

from .cache import CacheDir

# The cloud flavour is the smallest amd64 kernel (14 MB bzImage) with virtio and an EFI stub.
KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
_DEPENDS = re.compile(r"Depends:\s+(linux-image-\S+)")


async def kernel_package(cache: CacheDir) -> str:
    """The kernel package: whatever is cached (stable digests), else what the metapackage wants now."""
    cached = sorted(cache.debs.glob("linux-image-*-cloud-amd64_*.deb"))
    if cached:
        return cached[-1].name.split("_", 1)[0]
    result = await run_tool(["apt-cache", "depends", KERNEL_METAPACKAGE], timeout=60)
    match = _DEPENDS.search(result.stdout.decode())
    if match is None:
        raise RuntimeError(f"apt-cache knows no kernel behind {KERNEL_METAPACKAGE}; run apt-get update")
    return match[1]


async def download(cache: CacheDir, package: str, *, suite: str | None = None) -> Path:
    """`<cache>/debs[/<suite>]/<package>_<version>_<arch>.deb`, downloaded once.

    With `suite` (e.g. `trixie`) the package comes from that Debian release through a private apt
    configuration under the cache, so the system's sources and lists are never touched.
    """
    debs = cache.debs / suite if suite else cache.debs
    cached = sorted(debs.glob(f"{package}_*.deb"))
    if cached:
        return cached[-1]
    debs.mkdir(parents=True, exist_ok=True)
    options = await _suite_options(cache, suite) if suite else []
    with cache.scratch() as tmp:
        # apt-get writes into its cwd; a private dir keeps a failed download out of debs/.
        await run_tool(["apt-get", *options, "download", package], cwd=Path(tmp), timeout=600)
        return _keep(Path(tmp), package, debs)


def _system_mirror() -> str:
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return "http://deb.debian.org/debian"


async def _suite_options(cache: CacheDir, suite: str) -> list[str]:
    """apt options for a private view of another Debian suite (same mirror as the system's)."""
    root = cache.root / f"apt-{suite}"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    mirror = _system_mirror()
    (root / "sources.list").write_text(f"deb {mirror} {suite} main\n")
    options = [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Acquire::Languages=none",
    ]  # fmt: skip
    if not any((root / "lists").glob("*_Packages")):
        await run_tool(["apt-get", *options, "update"], timeout=600)
    return options


def _keep(downloads: Path, package: str, debs: Path) -> Path:
    found = sorted(downloads.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} produced no .deb")
    return Path(shutil.move(found[-1], debs / found[-1].name))


async def extract(deb: Path, dest: Path) -> Path:
    """`dpkg-deb -x`: unpack the data part only; no maintainer scripts run."""
    await run_tool(["dpkg-deb", "-x", deb, dest], timeout=300)  # creates dest
    return dest

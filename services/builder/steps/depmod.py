"""`depmod` over an unpacked modules tree (imager spec §4.5 step 5).

Upstream runs `depmod --all --basedir <T>/modules… --config /etc/modules.d/10-extra-modules.conf K` with
a config file holding one line, `search extras built-in` (§1.1), so modules under `K/extras` win over
in-tree ones. We write that file into the build's own work dir instead of relying on the host's /etc.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.shared.tools import run_tool

DEPMOD_CONFIG = "search extras built-in\n"


@dataclass(frozen=True)
class DepmodSpec:
    """`basedir` holds `lib/modules/<kernel_version>` (Debian's kmod 30 looks under `<basedir>/lib/modules`)."""

    basedir: Path
    kernel_version: str
    config: Path


def depmod_argv(spec: DepmodSpec) -> list[str]:
    return [
        "depmod", "--all",
        "--basedir", os.fspath(spec.basedir),
        "--config", os.fspath(spec.config),
        spec.kernel_version,
    ]  # fmt: skip


def write_config(path: Path) -> Path:
    path.write_text(DEPMOD_CONFIG)
    return path


async def run_depmod(spec: DepmodSpec) -> None:
    await run_tool(depmod_argv(spec))

"""Cold build time per asset kind through the gateway vs the same tool pipeline replayed as a plain script.

Ours: `GET /image/<fresh schematic>/<version>/<asset>` on a mesh whose upstream images are already pulled,
timed until the last byte arrived (plan, build, cache put and signature, download).

Baseline: the builder runs as `tests.bench.tool_recorder`, which records every `run_tool` call of one
more cold build of the same asset (argv, stdin, env, and the work dir as it was just before the call).
This script then replays those calls back-to-back with `subprocess.run`, no service around them; before
each call the work dir is restored (untimed), so every tool sees exactly the inputs it saw in the builder.
The baseline therefore holds only the Debian tools' own time (mkfs.*, mtools, xorriso, grub, tar2sqfs,
zstd/xz, qemu-img, ...). It excludes what the builder does in Python between tools (unpacking layers,
writing cpio archives, PE/UKI assembly, GPT, tars) and everything around the build (gRPC, cache put,
the HTTP download), so the ratio charges all of that to us. Ratio = ours / baseline (target <= 1.2).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo_release import DemoRelease
from services.mesh import supervisor
from services.mesh.supervisor import Mesh
from services.shared.tools import tool_env
from services.signer.keys import CosignKey
from tests.bench.common import THREE_EXTENSIONS, VERSION, builds, cold_schematic, print_table, timed_download
from tests.bench.tool_recorder import RECORD_DIR_ENV, WORK_ROOT_ENV
from tests.e2e.conftest import demo_artifacts
from tests.support.mesh import make_mesh

KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cmdline", "cmdline-metal-amd64", ()),
    ("initramfs, 3 extensions", "initramfs-amd64.xz", THREE_EXTENSIONS),
    ("ISO", "metal-amd64.iso", ()),
    ("UKI", "metal-amd64-uki.efi", ()),
    ("raw.xz disk image", "metal-amd64.raw.xz", ()),
    ("qcow2 disk image", "metal-amd64.qcow2", ()),
    ("installer tar", "installer-amd64.tar", ()),
)


@pytest.fixture(scope="module")
def recording_mesh(
    tmp_path_factory: pytest.TempPathFactory, demo_release: DemoRelease, demo_key: CosignKey
) -> Iterator[tuple[Mesh, Path]]:
    root = tmp_path_factory.mktemp("cold-build")
    records = root / "records"
    records.mkdir()
    env = {RECORD_DIR_ENV: os.fspath(records), WORK_ROOT_ENV: os.fspath(root / "state" / "builder" / "work")}
    mesh = make_mesh(root, extra_env=env, artifacts=demo_artifacts(demo_release, demo_key))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(supervisor.MODULES, "builder", "tests.bench.tool_recorder")
        mesh.start(timeout=60)
    yield mesh, records
    mesh.stop()


def record_build(mesh: Mesh, records: Path, name: str, path: str, extensions: tuple[str, ...]) -> Path:
    """One more cold build of `path` with every tool call recorded; the recording's directory."""
    sid = cold_schematic(mesh.url, extensions)
    (records / "active").write_text(name)
    try:
        timed_download(f"{mesh.url}/image/{sid}/{VERSION}/{path}")
    finally:
        (records / "active").unlink()
    recording = records / name
    recording.mkdir(exist_ok=True)  # a build without tools (cmdline) records nothing
    return recording


def replay(recording: Path, work_root: Path) -> tuple[float, float, int]:
    """Replay a recording: (seconds in the tools here, seconds they took inside the builder, calls)."""
    here = there = 0.0
    steps = sorted(recording.iterdir())
    for step in steps:
        call = json.loads((step / "call.json").read_text())
        shutil.rmtree(work_root, ignore_errors=True)
        subprocess.run(["cp", "-a", "--sparse=always", os.fspath(step / "work"), os.fspath(work_root)], check=True)
        cwd = Path(call["cwd"]) if call["cwd"] else None
        with contextlib.ExitStack() as files:
            stdin = files.enter_context((step / "stdin").open("rb")) if call["stdin"] else subprocess.DEVNULL
            out = call["stdout_path"]
            stdout = files.enter_context(Path(out).open("wb")) if out else subprocess.PIPE
            start = time.perf_counter()
            done = subprocess.run(
                call["argv"],
                cwd=cwd,
                env=tool_env(cwd, call["env_extra"]),
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.PIPE,
                start_new_session=True,
                check=False,
            )
            here += time.perf_counter() - start
        assert done.returncode == 0 or not call["check"], f"{call['argv'][0]}: {done.stderr[-2000:]!r}"
        there += call["builder_seconds"]
    shutil.rmtree(work_root, ignore_errors=True)
    work_root.mkdir()
    return here, there, len(steps)


@pytest.mark.timeout(600)  # ~3 min alone; more when the machine is shared
def test_cold_build_vs_tool_pipeline(recording_mesh: tuple[Mesh, Path]) -> None:
    mesh, records = recording_mesh
    work_root = mesh.config.state_dir / "builder" / "work"
    rows: list[tuple[object, ...]] = []
    totals = [0.0, 0.0, 0.0]
    for name, path, extensions in KINDS:
        # The recording build comes first: it also pulls whatever upstream image this kind needs, so the
        # timed build that follows is cold for the asset only, as in a running factory.
        recording = record_build(mesh, records, name.split(",")[0].split()[0], path, extensions)
        sid = cold_schematic(mesh.url, extensions)
        before = builds(mesh)
        ours, size = timed_download(f"{mesh.url}/image/{sid}/{VERSION}/{path}")
        assert builds(mesh) == before + 1, f"{path} was not a cold build"
        tools_here, tools_in_builder, calls = replay(recording, work_root)
        totals = [totals[0] + ours, totals[1] + tools_here, totals[2] + tools_in_builder]
        ratio = f"{ours / tools_here:.2f}x" if tools_here else "n/a (no tools)"
        rows.append(
            (
                name,
                f"{size / 2**20:.1f} MiB",
                f"{ours:.2f}",
                f"{tools_here:.2f}",
                calls,
                f"{tools_in_builder:.2f}",
                ratio,
            )
        )
    everything = ("all seven", "", f"{totals[0]:.2f}", f"{totals[1]:.2f}", "", f"{totals[2]:.2f}")
    rows.append((*everything, f"{totals[0] / totals[1]:.2f}x"))
    print_table(
        f"cold build through the gateway vs the builder's tool calls replayed by a plain script ({VERSION})",
        ("asset", "size", "ours s", "tools replayed s", "tool calls", "same tools in builder s", "ratio"),
        rows,
    )
    print(
        "baseline = only the Debian tools, replayed with their recorded inputs; it excludes the builder's own "
        "Python steps (layer unpacking, cpio, PE/UKI, GPT, tar), gRPC, the cache put and the download"
    )

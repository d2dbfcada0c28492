"""The builder process with `run_tool` wrapped, so a benchmark can replay the exact tool pipeline of a build.

Run as `python -m tests.bench.tool_recorder` in place of `python -m services.builder`. While the file
`<IF_BENCH_RECORD_DIR>/active` names a recording, every tool call of the builder is saved under
`<IF_BENCH_RECORD_DIR>/<name>/<n>/`: `call.json` (argv, cwd, env_extra, stdout path, the builder's own
duration of the call), `stdin` (when the tool was fed bytes) and `work/`, a copy of the builder's whole
work root taken just before the tool ran. Replaying step n = restore `work/` to the same absolute path
(untimed), then run argv the way `run_tool` does (timed). Without the `active` file the wrapper only
adds one stat(2) per tool call, so the same process also serves the timed builds.

Recording copies the work root once per tool call: only one build may run while recording.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from services.shared import tools

RECORD_DIR_ENV = "IF_BENCH_RECORD_DIR"
WORK_ROOT_ENV = "IF_BENCH_WORK_ROOT"

_original_run_tool = tools.run_tool


def _snapshot(work_root: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # --sparse keeps multi-GiB disk images cheap; --reflink where the filesystem can.
    subprocess.run(
        ["cp", "-a", "--sparse=always", "--reflink=auto", os.fspath(work_root), os.fspath(dest)],
        check=True,
    )


async def recording_run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    timeout: float = 600,  # noqa: ASYNC109 - same signature as run_tool
    stdin: bytes | None = None,
    stdout_path: Path | None = None,
    env_extra: Mapping[str, str] | None = None,
    check: bool = True,
) -> tools.ToolResult:
    record_dir = Path(os.environ[RECORD_DIR_ENV])
    active = record_dir / "active"
    step: Path | None = None
    if active.is_file():  # one stat(2) per tool call: the price of recording on demand
        name = active.read_text().strip()
        recording = record_dir / name
        recording.mkdir(parents=True, exist_ok=True)
        step = recording / f"{len(list(recording.iterdir())):03d}"
        _snapshot(Path(os.environ[WORK_ROOT_ENV]), step / "work")
        if stdin is not None:
            (step / "stdin").write_bytes(stdin)
    start = time.monotonic()
    result = await _original_run_tool(
        argv, cwd=cwd, timeout=timeout, stdin=stdin, stdout_path=stdout_path, env_extra=env_extra, check=check
    )
    if step is not None:
        call: dict[str, Any] = {
            "argv": list(result.argv),
            "cwd": os.fspath(cwd) if cwd is not None else None,
            "env_extra": dict(env_extra or {}),
            "stdout_path": os.fspath(stdout_path) if stdout_path is not None else None,
            "stdin": stdin is not None,
            "check": check,
            "builder_seconds": time.monotonic() - start,
        }
        (step / "call.json").write_text(json.dumps(call, indent=1))
    return result


def main() -> None:
    # Before anything imports the steps: they bind `run_tool` by name at import time.
    tools.run_tool = recording_run_tool  # type: ignore[assignment]
    runpy.run_module("services.builder", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

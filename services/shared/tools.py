"""The one door for external processes (STYLE.md "What this means for our code" §3).

Every tool the factory runs (sbsign, mkfs.vfat, xorriso, ...) goes through `run_tool`: argv only (never a
shell), its own session so a timeout can kill the whole process group, stdin from /dev/null, a scrubbed
environment, one debug line `+ argv` and one span `tool <argv0>`. Failures become one-line `Internal`
errors; the argv and the stderr tail go to the log and the span, not to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opentelemetry import trace

from services.shared.errors import Internal

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)

# Talos' own default SOURCE_DATE_EPOCH (2019-06-01), used when the caller's environment has none.
DEFAULT_SOURCE_DATE_EPOCH = "1559424892"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDERR_TAIL = 4096  # bytes of stderr carried by ToolFailed
_STDERR_KEEP = 64 * 1024  # bytes of stderr kept in ToolResult
_CHUNK = 64 * 1024


class ToolMissing(Internal):
    """The executable is not on PATH (or not executable); health should already have said so."""

    def __init__(self, tool: str, detail: str = "not found on PATH") -> None:
        self.tool = tool
        super().__init__(f"required tool {tool} is missing: {detail}")


class ToolTimeout(Internal):
    """The tool ran longer than allowed; its whole process group was killed."""

    def __init__(self, tool: str, timeout: float) -> None:
        self.tool = tool
        self.timeout = timeout
        super().__init__(f"{tool} timed out after {timeout:g}s")


class ToolFailed(Internal):
    """The tool exited non-zero (or died from a signal). `stderr_tail` is the last 4 KiB of stderr."""

    def __init__(self, tool: str, returncode: int, stderr_tail: bytes) -> None:
        self.tool = tool
        self.returncode = returncode
        self.stderr_tail = stderr_tail[-STDERR_TAIL:]
        if returncode < 0:
            what = f"{tool} was killed by {_signal_name(-returncode)}"
        else:
            what = f"{tool} failed with exit code {returncode}"
        last = _last_line(self.stderr_tail)
        super().__init__(f"{what}: {last}" if last else what)


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes  # empty when stdout went to a file
    stderr: bytes  # at most the last 64 KiB
    duration: float  # seconds
    bytes_written: int  # stdout size (file or pipe)


def check_tools(names: Iterable[str]) -> list[str]:
    """Names that do not resolve on PATH, in the given order (mkosi-style startup check)."""
    return [name for name in names if shutil.which(name) is None]


def tool_env(cwd: Path | None = None, env_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment a tool sees: nothing leaks from ours except PATH and SOURCE_DATE_EPOCH."""
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_SOURCE_DATE_EPOCH,
        "HOME": os.fspath(cwd) if cwd is not None else "/tmp",
    }
    env.update(env_extra or {})
    return env


async def run_tool(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    timeout: float = 600,  # noqa: ASYNC109 - the deadline must also kill the process group
    stdin: bytes | None = None,
    stdout_path: Path | None = None,
    env_extra: Mapping[str, str] | None = None,
    check: bool = True,
) -> ToolResult:
    """Run one tool to completion. `check=False` returns non-zero results instead of raising
    (for tools whose exit code is an answer, like `sbverify`)."""
    args = tuple(os.fspath(a) for a in argv)
    if not args:
        raise ValueError("run_tool needs a non-empty argv")
    tool = Path(args[0]).name
    logger.debug("+ %s", shlex.join(args))
    with _tracer.start_as_current_span(f"tool {tool}") as span, contextlib.ExitStack() as stack:
        span.set_attribute("tool.argv", shlex.join(args))
        out: IO[bytes] | None = None
        if stdout_path is not None:
            out = stack.enter_context(stdout_path.open("wb"))
        start = time.monotonic()
        proc = await _spawn(tool, args, cwd, tool_env(cwd, env_extra), stdin is not None, out)
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await _communicate(proc, stdin)
        except TimeoutError:
            await _kill_group(proc)
            span.set_attribute("tool.timed_out", True)
            span.set_attribute("tool.duration_s", time.monotonic() - start)
            span.set_status(trace.StatusCode.ERROR, "timeout")
            logger.error("%s timed out after %gs: %s", tool, timeout, shlex.join(args))
            raise ToolTimeout(tool, timeout) from None
        except BaseException:  # cancelled: never leave the group running behind us
            await _kill_group(proc)
            raise
        rc = proc.returncode if proc.returncode is not None else -1
        duration = time.monotonic() - start
        written = out.tell() if out is not None else len(stdout)
        span.set_attribute("tool.exit_code", rc)
        span.set_attribute("tool.duration_s", duration)
        span.set_attribute("tool.bytes_written", written)
        if rc != 0 and check:
            tail = stderr[-STDERR_TAIL:]
            span.set_attribute("tool.stderr_tail", tail.decode(errors="replace"))
            span.set_status(trace.StatusCode.ERROR, f"exit code {rc}")
            logger.error("%s exited %d: %s\n%s", tool, rc, shlex.join(args), tail.decode(errors="replace"))
            raise ToolFailed(tool, rc, tail)
        return ToolResult(args, rc, stdout, stderr, duration, written)


async def _spawn(
    tool: str,
    args: tuple[str, ...],
    cwd: Path | None,
    env: dict[str, str],
    has_stdin: bool,
    out: IO[bytes] | None,
) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if has_stdin else asyncio.subprocess.DEVNULL,
            stdout=out if out is not None else asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # own process group: a timeout kills the tool and its children
        )
    except FileNotFoundError as exc:
        # Also raised for a missing cwd; name what is actually missing.
        if cwd is not None and not cwd.is_dir():  # noqa: ASYNC240 - one stat on the error path
            raise Internal(f"cannot run {tool}: working directory {cwd} does not exist") from exc
        raise ToolMissing(tool) from exc
    except PermissionError as exc:
        raise ToolMissing(tool, "not executable") from exc


async def _communicate(proc: asyncio.subprocess.Process, stdin: bytes | None) -> tuple[bytes, bytes]:
    """Feed stdin, drain stdout and keep only a bounded tail of stderr, then wait for exit."""

    async def feed() -> None:
        if proc.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin or b"")
            await proc.stdin.drain()
        proc.stdin.close()

    async def read_all() -> bytes:
        return await proc.stdout.read() if proc.stdout is not None else b""

    async def read_tail() -> bytes:
        buf = bytearray()
        while proc.stderr is not None and (chunk := await proc.stderr.read(_CHUNK)):
            buf += chunk
            del buf[:-_STDERR_KEEP]
        return bytes(buf)

    _, stdout, stderr, _ = await asyncio.gather(feed(), read_all(), read_tail(), proc.wait())
    return stdout, stderr


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # pgid == pid thanks to start_new_session
    with contextlib.suppress(ProcessLookupError):
        await asyncio.shield(proc.wait())


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

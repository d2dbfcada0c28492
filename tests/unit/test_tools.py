"""run_tool against fake binaries on PATH (STYLE.md §13, osbuild `mock_command`)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.shared import tools
from services.shared.errors import Internal
from services.shared.tools import ToolFailed, ToolMissing, ToolTimeout, check_tools, run_tool


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:{os.environ.get('PATH', tools.DEFAULT_PATH)}")
    return d


def fake(bindir: Path, name: str, script: str) -> Path:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tools, "_tracer", provider.get_tracer("test"))
    return exporter


async def test_success_captures_stdout_and_records_span(bindir: Path, spans: InMemorySpanExporter) -> None:
    fake(bindir, "hello", 'printf "hi %s" "$1"\necho warn >&2\n')
    result = await run_tool(["hello", Path("world")])
    assert result.returncode == 0
    assert result.stdout == b"hi world"
    assert result.stderr == b"warn\n"
    assert result.bytes_written == 8
    assert result.argv == ("hello", "world")
    (span,) = spans.get_finished_spans()
    assert span.name == "tool hello"
    assert span.attributes is not None
    assert span.attributes["tool.exit_code"] == 0
    assert span.attributes["tool.bytes_written"] == 8
    assert isinstance(span.attributes["tool.duration_s"], float)


async def test_debug_log_shows_argv(bindir: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake(bindir, "quiet", "exit 0\n")
    with caplog.at_level(logging.DEBUG, logger="services.shared.tools"):
        await run_tool(["quiet", "a b", "c"])
    assert "+ quiet 'a b' c" in caplog.messages


async def test_nonzero_exit_raises_tool_failed_with_last_line(bindir: Path) -> None:
    fake(bindir, "sbsign", "echo 'first problem' >&2\necho 'Invalid key' >&2\nexit 3\n")
    with pytest.raises(ToolFailed) as info:
        await run_tool(["sbsign", "--key", "k"])
    err = info.value
    assert isinstance(err, Internal)
    assert (err.tool, err.returncode) == ("sbsign", 3)
    assert err.stderr_tail == b"first problem\nInvalid key\n"
    assert err.message == "sbsign failed with exit code 3: Invalid key"


async def test_stderr_tail_is_last_4_kib(bindir: Path) -> None:
    fake(bindir, "noisy", "head -c 200000 /dev/zero | tr '\\0' x >&2\necho >&2\necho 'the end' >&2\nexit 1\n")
    with pytest.raises(ToolFailed) as info:
        await run_tool(["noisy"])
    tail = info.value.stderr_tail
    assert len(tail) == 4096
    assert tail.endswith(b"x\nthe end\n")
    assert "\n" not in info.value.message
    assert info.value.message == "noisy failed with exit code 1: the end"


async def test_failure_without_stderr_and_check_false(bindir: Path) -> None:
    fake(bindir, "nope", "exit 2\n")
    with pytest.raises(ToolFailed, match=r"^nope failed with exit code 2$"):
        await run_tool(["nope"])
    result = await run_tool(["nope"], check=False)
    assert result.returncode == 2


async def test_killed_by_signal(bindir: Path) -> None:
    fake(bindir, "crash", "kill -SEGV $$\n")
    with pytest.raises(ToolFailed, match=r"^crash was killed by SIGSEGV$"):
        await run_tool(["crash"])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_timeout_kills_whole_process_group(bindir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The child keeps stderr open: without a group kill, run_tool would wait for it forever.
    fake(bindir, "hang", f"sleep 300 &\necho $! > {pidfile}\nwait\n")
    started = time.monotonic()
    with pytest.raises(ToolTimeout, match=r"^hang timed out after 0.5s$"):
        await run_tool(["hang"], timeout=0.5)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    for _ in range(100):
        if not _alive(child):
            break
        await asyncio.sleep(0.05)
    assert not _alive(child)


async def test_cancellation_kills_process_group(bindir: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "self.pid"
    fake(bindir, "slow", f"echo $$ > {pidfile}\nexec sleep 300\n")
    task = asyncio.create_task(run_tool(["slow"]))
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(int(pidfile.read_text()))


async def test_stdin_bytes_and_dev_null(bindir: Path) -> None:
    fake(bindir, "cat2", "exec cat\n")
    data = os.urandom(300_000)  # larger than a pipe buffer
    assert (await run_tool(["cat2"], stdin=data)).stdout == data
    assert (await run_tool(["cat2"])).stdout == b""


async def test_stdout_to_file(bindir: Path, tmp_path: Path) -> None:
    fake(bindir, "gen", "head -c 12345 /dev/zero\n")
    out = tmp_path / "out.bin"
    result = await run_tool(["gen"], stdout_path=out)
    assert result.stdout == b""
    assert result.bytes_written == 12345
    assert out.stat().st_size == 12345


async def test_env_is_scrubbed(bindir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    env = _env_of(await run_tool(["env"]))
    assert env == {
        "PATH": os.environ["PATH"],
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "SOURCE_DATE_EPOCH": "1559424892",
        "HOME": "/tmp",
    }
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    env = _env_of(await run_tool(["env"], cwd=tmp_path, env_extra={"XZ_OPT": "-9"}))
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert env["HOME"] == os.fspath(tmp_path)
    assert env["XZ_OPT"] == "-9"
    assert "AWS_SECRET_ACCESS_KEY" not in env


def _env_of(result: tools.ToolResult) -> dict[str, str]:
    return dict(line.split("=", 1) for line in result.stdout.decode().splitlines())


async def test_cwd(bindir: Path, tmp_path: Path) -> None:
    assert (await run_tool(["pwd"], cwd=tmp_path)).stdout.decode().strip() == os.fspath(tmp_path)


async def test_missing_tool(bindir: Path, tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match=r"^required tool no-such-tool-xyz is missing: not found on PATH$"):
        await run_tool(["no-such-tool-xyz", "--help"])
    (bindir / "noexec").write_text("#!/bin/sh\n")
    with pytest.raises(ToolMissing, match="not executable"):
        await run_tool([bindir / "noexec"])
    with pytest.raises(Internal, match="working directory"):
        await run_tool(["pwd"], cwd=tmp_path / "missing")


def test_check_tools(bindir: Path) -> None:
    fake(bindir, "present-tool", "exit 0\n")
    assert check_tools(["present-tool", "absent-tool-1", "sh", "absent-tool-2"]) == [
        "absent-tool-1",
        "absent-tool-2",
    ]

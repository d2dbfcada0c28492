"""A recording stand-in for `run_tool` (argv pinning, STYLE.md §13), patched into every step module."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.shared.tools import ToolResult

# A handler plays the tool: it gets the argv, stdin bytes and the stdout file, and makes the outputs.
Handler = Callable[[list[str], bytes | None, Path | None], object]


@dataclass
class Call:
    argv: list[str]
    stdin: bytes | None
    stdout_path: Path | None
    env_extra: dict[str, str]


@dataclass
class FakeTools:
    calls: list[Call] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)

    async def run_tool(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        timeout: float = 600,  # noqa: ASYNC109 - same signature as run_tool
        stdin: bytes | None = None,
        stdout_path: Path | None = None,
        env_extra: dict[str, str] | None = None,
        check: bool = True,
    ) -> ToolResult:
        args = [os.fspath(a) for a in argv]
        self.calls.append(Call(args, stdin, stdout_path, dict(env_extra or {})))
        handler = self.handlers.get(Path(args[0]).name)
        if handler is not None:
            handler(args, stdin, stdout_path)
        elif stdout_path is not None:
            stdout_path.write_bytes(b"")  # noqa: ASYNC240 - test double
        return ToolResult(tuple(args), 0, b"", b"", 0.0, 0)

    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    fake = FakeTools()
    for module in (
        "services.builder.steps.squashfs",
        "services.builder.steps.depmod",
        "services.builder.steps.initramfs_codec",
    ):
        monkeypatch.setattr(f"{module}.run_tool", fake.run_tool)
    return fake

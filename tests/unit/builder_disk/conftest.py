"""A recording stand-in for `run_tool` in the disk-image step modules (argv pinning, STYLE.md §13)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.shared.tools import ToolResult

# A handler plays the tool: it gets the argv and may return what the tool prints (bytes).
Handler = Callable[[list[str]], object]
MODULES = (
    "services.builder.steps.fat",
    "services.builder.steps.xfs",
    "services.builder.steps.grub_disk",
    "services.builder.steps.qemu_img",
    "services.builder.steps.compress",
)


@dataclass
class Call:
    argv: list[str]
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
        self.calls.append(Call(args, dict(env_extra or {})))
        handler = self.handlers.get(Path(args[0]).name)
        printed = handler(args) if handler is not None else None
        stdout = printed if isinstance(printed, bytes) else b""
        return ToolResult(tuple(args), 0, stdout, b"", 0.0, len(stdout))

    def argvs(self) -> list[list[str]]:
        return [call.argv for call in self.calls]

    def tools(self) -> list[str]:
        return [call.argv[0] for call in self.calls]


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    fake = FakeTools()
    for module in MODULES:
        monkeypatch.setattr(f"{module}.run_tool", fake.run_tool)
    return fake

"""depmod step (imager spec §4.5 step 5)."""

from __future__ import annotations

from pathlib import Path

from services.builder.steps.depmod import DEPMOD_CONFIG, DepmodSpec, depmod_argv, run_depmod, write_config
from tests.unit.builder_steps.conftest import FakeTools


def test_argv() -> None:
    spec = DepmodSpec(basedir=Path("/t/modules/usr"), kernel_version="6.18.1-talos", config=Path("/t/depmod.conf"))
    assert depmod_argv(spec) == [
        "depmod", "--all",
        "--basedir", "/t/modules/usr",
        "--config", "/t/depmod.conf",
        "6.18.1-talos",
    ]  # fmt: skip


def test_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.conf")
    assert path.read_text() == DEPMOD_CONFIG == "search extras built-in\n"


async def test_runner(fake_tools: FakeTools) -> None:
    spec = DepmodSpec(basedir=Path("/b"), kernel_version="6.1.0", config=Path("/c"))
    await run_depmod(spec)
    assert fake_tools.argvs() == [depmod_argv(spec)]

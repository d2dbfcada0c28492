"""The committed generated code must be exactly what `make proto` produces from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [ROOT / "scripts" / "gen_proto.sh", tmp_path],
        check=True,
        capture_output=True,
        env={"VENV_BIN": str(Path(sys.executable).parent), "PATH": "/usr/bin:/bin"},
    )
    fresh = tmp_path / "imagefactory" / "v1"
    committed = ROOT / "gen" / "imagefactory" / "v1"
    fresh_files = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed_files = sorted(p.name for p in committed.iterdir() if p.is_file())
    assert fresh_files == committed_files, "run `make proto` and commit gen/"
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, fresh_files, shallow=False)
    assert not mismatch and not errors, f"stale generated code {mismatch + errors}: run `make proto`"

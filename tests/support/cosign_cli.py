"""The real `cosign` CLI (Debian 13's, fetched by `make setup`) as an independent verifier."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

COSIGN = Path(__file__).resolve().parents[2] / "tools" / "trixie" / "cosign" / "usr" / "bin" / "cosign"


def cosign_binary() -> Path:
    """Skip without it, but fail in CI, where `make setup` fetches it."""
    if not os.access(COSIGN, os.X_OK):
        message = f"{COSIGN} is missing (scripts/fetch_cosign.sh fetches it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return COSIGN


def cosign_verify(image: str, public_key: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`cosign verify` offline with a key, against a plain-HTTP registry; never touches the network."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TUF_ROOT": str(home / "tuf")}
    return subprocess.run(
        [
            cosign_binary(), "verify", "--key", public_key, "--allow-http-registry",
            "--insecure-ignore-tlog=true", "--offline=true", image,
        ],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip

"""Launch the real mesh (one OS process per service) on free loopback ports for a test."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.mesh.supervisor import Mesh
from services.shared.config import PROCESS_NAMES, SERVICE_NAMES, config_to_env, load_config
from tests.support.ports import free_port


def mesh_overrides(state_dir: Path, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Config overrides that put every listener on a free port and all state under `state_dir`."""
    port = free_port()
    overrides: dict[str, Any] = {
        "state_dir": str(state_dir),
        "log_level": "debug",
        "services": {name: f"127.0.0.1:{free_port()}" for name in SERVICE_NAMES},
        # qemu guests (user networking) reach the host's loopback as 10.0.2.2: PXE scripts point there.
        "http": {
            "listen": f"127.0.0.1:{port}",
            "external_url": f"http://127.0.0.1:{port}/",  # links and installer references name this mesh
            "external_pxe_url": f"http://10.0.2.2:{port}/",
        },
        "metrics": {name: f"127.0.0.1:{free_port()}" for name in PROCESS_NAMES},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(overrides.get(key), dict):
            overrides[key].update(value)
        else:
            overrides[key] = value
    return overrides


def make_mesh(tmp_path: Path, extra_env: Mapping[str, str] | None = None, **extra: Any) -> Mesh:
    """A not-yet-started mesh whose processes log to tmp_path/logs."""
    overrides = mesh_overrides(tmp_path / "state", extra)

    config = load_config(None, config_to_env(overrides))
    return Mesh(
        config=config,
        overrides=overrides,
        extra_env=dict(extra_env or {}),
        log_dir=tmp_path / "logs",
    )

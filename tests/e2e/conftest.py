"""Fixtures for end-to-end tests: the real mesh as processes, with an OTLP receiver for its spans."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.demo_release import DemoRelease
from services.mesh.supervisor import Mesh
from services.signer.keys import CosignKey
from tests.support.demo import demo_key_pub
from tests.support.mesh import make_mesh
from tests.support.otlp import OtlpReceiver, serve_otlp
from tests.support.ports import free_port


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:  # cold builds answer late
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture(scope="module")
def otlp() -> Iterator[tuple[OtlpReceiver, int]]:
    port = free_port()
    for receiver in serve_otlp(port):
        yield receiver, port


@pytest.fixture
def mesh(tmp_path: Path, otlp: tuple[OtlpReceiver, int]) -> Iterator[Mesh]:
    _, port = otlp
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    mesh = make_mesh(tmp_path, extra_env=env)
    mesh.start(timeout=60)
    try:
        yield mesh
    finally:
        mesh.stop()


def demo_artifacts(release: DemoRelease, key: CosignKey, **extra: Any) -> dict[str, Any]:
    """Point the catalog at the demo release and trust only the demo key (no keyless identity)."""
    return {
        "registry": release.registry,
        "insecure": True,
        "signature": {"public_key_file": str(demo_key_pub(key)), "subject_regexp": ""},
        **extra,
    }


@pytest.fixture(scope="session")
def demo_mesh(
    tmp_path_factory: pytest.TempPathFactory, demo_release: DemoRelease, demo_key: CosignKey
) -> Iterator[Mesh]:
    mesh = make_mesh(
        tmp_path_factory.mktemp("demo-mesh"),
        artifacts=demo_artifacts(demo_release, demo_key, broken_talos_versions=["1.11.5"]),
    )
    mesh.start(timeout=60)
    yield mesh
    mesh.stop()

"""`make demo` (python -m devtools.demo) starts the offline mesh, answers, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from services.shared.config import config_to_env
from tests.e2e.conftest import http_get
from tests.support.mesh import mesh_overrides
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.registry]


def test_demo_serves_the_demo_release_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    overrides = mesh_overrides(tmp_path / "unused")
    del overrides["state_dir"]  # the demo keeps its own state under --dir
    env = {**os.environ, **config_to_env(overrides)}
    url = f"http://{overrides['http']['listen']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.demo", "--dir", str(tmp_path / "demo"), "--registry-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        ready = ""
        while time.monotonic() < deadline and "is ready at" not in ready:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"demo exited with {process.returncode}: {ready}")
            ready += line
        assert f"Image Factory demo is ready at {url}/" in ready
        status, _, body = http_get(f"{url}/versions")
        assert status == 200
        assert json.loads(body) == ["v1.9.6", "v1.11.5", "v1.12.1", "v1.13.0-beta.1"]

        # A service that dies is restarted by the supervisor; the mesh answers again without help.
        builder = child_running(process.pid, "services.builder")
        os.kill(builder, signal.SIGKILL)
        sid = json.loads(post(f"{url}/schematics", b"customization: {}\n"))["id"]
        deadline = time.monotonic() + 30
        while http_get(f"{url}/readyz")[0] != 200 or child_running(process.pid, "services.builder") == builder:
            assert time.monotonic() < deadline, "the builder was not restarted"
            time.sleep(0.2)
        status, _, body = http_get(f"{url}/image/{sid}/v1.12.1/cmdline-metal-amd64")
        assert status == 200, body
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        with pytest.raises(OSError):  # nothing is left listening
            http_get(f"{url}/healthz")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def child_running(parent: int, module: str) -> int:
    """The pid of `parent`'s child process running `python -m <module>`."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in children:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if module.encode() in argv and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
            return int(pid)
    raise AssertionError(f"no child runs {module}")


def post(url: str, body: bytes) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as reply:
        return bytes(reply.read())

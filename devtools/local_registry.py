"""A CNCF distribution registry (Debian's `docker-registry`) on loopback, for the demo and the tests.

Our own configuration: Debian's packaged one listens on all interfaces and wants htpasswd auth.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

READY_TIMEOUT = 10.0


class RegistryError(RuntimeError):
    """The registry binary is missing or did not come up."""


@dataclass
class RegistryServer:
    host: str  # "127.0.0.1:PORT", what RegistryClient and skopeo are given
    url: str  # "http://127.0.0.1:PORT"
    root: Path  # storage.filesystem.rootdirectory
    process: subprocess.Popen[bytes]
    log: Path

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (so tests can corrupt them)."""
        hex_ = digest.removeprefix("sha256:")
        return self.root / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port that was free a moment ago and that this process has not handed out before.

    Several servers are started per test session; the OS can offer the same free port twice while the
    first taker has not bound it yet, so ports are never reused within one process.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def start_registry(workdir: Path, *, port: int = 0, auth: dict[str, Any] | None = None) -> RegistryServer:
    """Start `docker-registry serve` with storage under `workdir`; returns once `/v2/` answers."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryError("docker-registry is not on PATH (apt-get install docker-registry)")
    port = port or free_port()
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        # A fixed secret silences the "generated random secret" warning at start-up.
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if auth is not None:
        config["auth"] = auth
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = workdir / "registry.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "serve", os.fspath(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RegistryServer(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", root, process, log)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: RegistryServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RegistryError(
                f"docker-registry exited with {server.process.returncode}: {server.log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/v2/", timeout=1):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and wants credentials
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RegistryError(f"docker-registry not ready within {READY_TIMEOUT} s: {server.log.read_text()[-2000:]}")

"""Start the whole mesh on one machine as separate processes and keep an eye on them.

Used by `make run` (via `python -m services.mesh`) and by the end-to-end tests. Each service is its own
OS process on a loopback port; the gateway starts last, once every service reports SERVING. While it
runs, a process that dies is restarted with backoff (clients reconnect on their own), unless it keeps
dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.shared.config import PROCESS_NAMES, SERVICE_NAMES, Config, config_to_env

log = logging.getLogger(__name__)

MODULES = {name: f"services.{name}" for name in SERVICE_NAMES} | {"gateway": "gateway"}


class MeshError(Exception):
    """A process of the mesh failed to start or died."""


@dataclass
class Mesh:
    """The processes of one mesh. `overrides` become `IF_…` variables of every child."""

    config: Config
    config_file: Path | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(config_to_env(self.overrides))
        env.update(self.extra_env)
        if self.config_file is not None:
            env["IF_CONFIG"] = os.fspath(self.config_file)
        return env

    def start_process(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart) one process of the mesh."""
        argv = [sys.executable, "-m", MODULES[name]]
        stderr: Any = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stderr = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, env=self._env(), stdin=subprocess.DEVNULL, stderr=stderr)
        if stderr is not None:
            stderr.close()  # the child holds its own descriptor
        self.processes[name] = proc
        return proc

    def start(self, timeout: float = 30.0) -> None:
        """Start the services, wait until each is SERVING, then the gateway, then wait for /readyz."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            for name in SERVICE_NAMES:
                self.start_process(name)
            for name in SERVICE_NAMES:
                self.wait_serving(name, deadline)
            self.start_process("gateway")
            self.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def _check_alive(self, name: str) -> None:
        proc = self.processes[name]
        if proc.poll() is not None:
            raise MeshError(f"{name} exited with code {proc.returncode} during start-up")

    def wait_serving(self, name: str, deadline: float) -> None:
        address = self.config.services.address(name)
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive(name)
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise MeshError(f"{name} did not become healthy on {address}")
                time.sleep(0.05)

    @property
    def url(self) -> str:
        host, _, port = self.config.http.listen.rpartition(":")
        return f"http://{host}:{port}"

    def wait_ready(self, deadline: float) -> None:
        while True:
            self._check_alive("gateway")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MeshError(f"gateway at {self.url} did not become ready")
            time.sleep(0.05)

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        proc = self.processes.get(name)
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def stop(self) -> None:
        """Gateway first (stop taking requests), then the services, each with SIGTERM."""
        for name in reversed(PROCESS_NAMES):
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name in reversed(PROCESS_NAMES):
            self.stop_process(name)

    def exited(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.processes.items() if p.poll() is not None]


@dataclass
class RestartPolicy:
    """When to restart a process that died, and when to give up (a crash loop stops the mesh).

    Like an init system: the first restart comes after `base_delay`, each further one within `window`
    waits twice as long (up to `max_delay`), and more than `max_restarts` deaths within `window` end it.
    """

    max_restarts: int = 5
    window: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 10.0
    deaths: dict[str, list[float]] = field(default_factory=dict)

    def delay(self, name: str, now: float) -> float | None:
        """Seconds to wait before restarting `name`, which just died; None: give up."""
        recent = [t for t in self.deaths.get(name, []) if now - t < self.window] + [now]
        self.deaths[name] = recent
        if len(recent) > self.max_restarts:
            return None
        return float(min(self.base_delay * 2.0 ** (len(recent) - 1), self.max_delay))


async def supervise(mesh: Mesh, policy: RestartPolicy | None = None) -> int:
    """Restart children that die (with backoff) until SIGINT/SIGTERM; a crash loop stops everything."""
    policy = policy or RestartPolicy()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    restart_at: dict[str, float] = {}
    while not stop.is_set():
        now = time.monotonic()
        for name, code in mesh.exited():
            if name in restart_at:
                continue
            wait = policy.delay(name, now)
            if wait is None:
                log.error("process keeps dying; stopping the mesh", extra={"child": name, "code": code})
                mesh.stop()
                return 1
            log.warning("process exited; restarting it", extra={"child": name, "code": code, "in_seconds": wait})
            restart_at[name] = now + wait
        for name, due in list(restart_at.items()):
            if now >= due:
                del restart_at[name]
                mesh.start_process(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)
    mesh.stop()
    return 0

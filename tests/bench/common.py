"""Small helpers shared by the benchmarks: schematics, metrics, timed downloads, tables."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from services.mesh.supervisor import Mesh
from services.shared.config import SERVICE_NAMES, config_to_env, load_config
from tests.e2e.conftest import http_get
from tests.support.ports import free_port

VERSION = "v1.12.1"
THREE_EXTENSIONS = ("siderolabs/demo-firmware", "siderolabs/demo-kmod", "siderolabs/demo-tools")
BUILT = "image_factory_assets_built_total"


def create_schematic(base_url: str, body: bytes) -> str:
    request = urllib.request.Request(f"{base_url}/schematics", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as reply:
        return str(json.loads(reply.read())["id"])


def cold_schematic(base_url: str, extensions: Sequence[str] = ()) -> str:
    """A schematic nobody asked for yet (a unique kernel argument), so each of its assets is a cold build."""
    lines = ["customization:", f"  extraKernelArgs: [bench.run={uuid.uuid4().hex}]"]
    if extensions:
        lines += ["  systemExtensions:", "    officialExtensions:", *(f"      - {name}" for name in extensions)]
    return create_schematic(base_url, ("\n".join(lines) + "\n").encode())


def builds(mesh: Mesh, kind: str | None = None) -> float:
    """`image_factory_assets_built_total` from the builder's /metrics, one output kind or all summed."""
    _, _, body = http_get(f"http://{mesh.config.metrics.address('builder')}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(BUILT + "{") and (kind is None or f'output_kind="{kind}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def timed_download(url: str, timeout: float = 600) -> tuple[float, int]:
    """(seconds, bytes) for one GET read to the end in 1 MiB chunks; raises on a non-200 answer."""
    start = time.perf_counter()
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        if reply.status != 200:
            raise AssertionError(f"GET {url}: {reply.status}")
        while chunk := reply.read(1024 * 1024):
            size += len(chunk)
    return time.perf_counter() - start, size


async def drain(session: aiohttp.ClientSession, url: str) -> int:
    """GET `url` and read it to the end without keeping it; the number of bytes."""
    size = 0
    async with session.get(url) as reply:
        if reply.status != 200:
            raise AssertionError(f"GET {url}: {reply.status} {await reply.text()}")
        async for chunk in reply.content.iter_chunked(1024 * 1024):
            size += len(chunk)
    return size


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A Markdown table on stdout (shown with `pytest -s`), ready to paste into the README."""
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def side_mesh(mesh: Mesh, root: Path, names: Sequence[str], **changes: Mapping[str, Any]) -> Mesh:
    """Start more processes (`names`, e.g. a second gateway) beside `mesh`, sharing its other services.

    `changes` are merged into the mesh's config sections (`http={"send_cache_files": False}`); the new
    processes get a state dir of their own and free ports for their listeners and metrics.
    """
    overrides: dict[str, Any] = {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in mesh.overrides.items()
    }
    overrides["state_dir"] = os.fspath(root / "state")
    port = free_port()
    overrides["http"].update(listen=f"127.0.0.1:{port}", external_url=f"http://127.0.0.1:{port}/")
    for name in names:
        overrides["metrics"][name] = f"127.0.0.1:{free_port()}"
        if name in SERVICE_NAMES:
            overrides["services"][name] = f"127.0.0.1:{free_port()}"
    for section, values in changes.items():
        overrides[section].update(values)
    side = Mesh(config=load_config(None, config_to_env(overrides)), overrides=overrides, log_dir=root / "logs")
    deadline = time.monotonic() + 60
    try:
        for name in names:
            side.start_process(name)
            if name in SERVICE_NAMES:
                side.wait_serving(name, deadline)
        if "gateway" in names:
            side.wait_ready(deadline)
    except BaseException:
        side.stop()
        raise
    return side

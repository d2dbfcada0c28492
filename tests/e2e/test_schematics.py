"""`/schematics` through the running mesh: every spec vector, strictness, idempotence, durability."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from services.mesh.supervisor import Mesh
from services.schematic.canonical import canonical_yaml
from tests.e2e.conftest import http_get
from tests.support.mesh import make_mesh
from tests.support.registry import RegistryServer
from tests.unit.schematic.test_ids import CANONICAL_VECTORS, INTEGRATION_SCHEMATICS, NORMALIZATION_VECTORS

pytestmark = pytest.mark.e2e


def post(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_every_vector_round_trips(mesh: Mesh) -> None:
    cases = [(text, expected) for text, expected in CANONICAL_VECTORS]
    cases += [(body, expected) for body, expected in NORMALIZATION_VECTORS]
    for body, expected_id in cases:
        status, headers, raw = post(f"{mesh.url}/schematics", body.encode())
        assert status == 201, raw
        assert headers["Content-Type"] == "application/json"
        reply = json.loads(raw)
        assert reply["id"] == expected_id
        assert raw.endswith(b"\n")
        status, headers, text = http_get(f"{mesh.url}/schematics/{expected_id}")
        assert (status, headers["Content-Type"]) == (200, "application/yaml")
        assert text.decode() == reply["schematic"]


def test_vanilla_response_is_byte_identical_to_the_reference(mesh: Mesh) -> None:
    status, _, raw = post(f"{mesh.url}/schematics", b"{}")
    assert status == 201
    assert raw == (
        b'{"id":"376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",'
        b'"schematic":"customization: {}\\n"}\n'
    )


def test_integration_schematics_round_trip(mesh: Mesh) -> None:
    for schematic in INTEGRATION_SCHEMATICS:
        text = canonical_yaml(schematic)
        status, _, raw = post(f"{mesh.url}/schematics", text.encode())
        assert status == 201, raw
        assert json.loads(raw)["schematic"] == text


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b"something:",
            400,
            b"yaml: construct errors: line 1: field something not found in type schematic.Schematic\n",
        ),
        (b"owner: bob\ncustomization: {}\n", 400, b"owner field is only supported in Enterprise edition\n"),
        (b"", 400, b"EOF\n"),
        (b"customization:\n  bootloader: lilo\n", 400, None),
        (b"customization:\n  meta:\n    - key: 256\n      value: x\n", 400, None),
        (b"a: &a [*a, *a]\n", 400, None),
        (b"[" * 5000, 400, None),
        (b"customization:\n  extraKernelArgs: " + b"x" * (1024 * 1024 + 1), 413, None),
    ],
)
def test_bad_bodies_are_client_errors(mesh: Mesh, body: bytes, status: int, message: bytes | None) -> None:
    got, headers, raw = post(f"{mesh.url}/schematics", body)
    assert got == status, raw
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    if message is not None:
        assert raw == message


def test_unknown_schematic(mesh: Mesh) -> None:
    for ident in ["a" * 64, "aaaaaaaaaaaa", "not-hex"]:
        status, _, raw = http_get(f"{mesh.url}/schematics/{ident}")
        assert (status, raw) == (404, b"schematic not found\n")


async def test_concurrent_identical_posts_store_one_object(mesh: Mesh) -> None:
    body = b"customization:\n    extraKernelArgs:\n        - concurrency-test\n"
    async with aiohttp.ClientSession() as session:

        async def one() -> tuple[int, str]:
            async with session.post(f"{mesh.url}/schematics", data=body) as reply:
                return reply.status, (await reply.json())["id"]

        results = await asyncio.gather(*(one() for _ in range(100)))
    assert {status for status, _ in results} == {201}
    ids = {ident for _, ident in results}
    assert len(ids) == 1
    (ident,) = ids
    stored = list((mesh.config.state_dir / "schematics").rglob("*.yaml"))
    assert [p.name for p in stored if p.name.startswith(ident)] == [f"{ident}.yaml"]


def test_schematics_survive_a_restart(mesh: Mesh) -> None:
    body = b"customization:\n    extraKernelArgs:\n        - durable\n"
    ident = json.loads(post(f"{mesh.url}/schematics", body)[2])["id"]
    mesh.stop_process("schematic")
    mesh.start_process("schematic")
    mesh.wait_serving("schematic", time.monotonic() + 30)
    status, _, text = http_get(f"{mesh.url}/schematics/{ident}")
    assert (status, text) == (200, body)


@pytest.mark.registry
def test_registry_backend(tmp_path: Path, registry: RegistryServer) -> None:
    mesh = make_mesh(
        tmp_path,
        schematic={
            "backend": "registry",
            "oci": {"registry": registry.host, "repository": "if/schematics", "insecure": True},
        },
    )
    mesh.start(timeout=60)
    try:
        status, _, raw = post(f"{mesh.url}/schematics", b"customization:\n  extraKernelArgs: [registry-backed]\n")
        assert status == 201
        ident = json.loads(raw)["id"]
        # Another mesh on the same registry (a second replica, or after losing local state) sees it.
        mesh.stop_process("schematic")
        mesh.start_process("schematic")
        mesh.wait_serving("schematic", time.monotonic() + 30)
        status, _, text = http_get(f"{mesh.url}/schematics/{ident}")
        assert status == 200
        assert text == b"customization:\n    extraKernelArgs:\n        - registry-backed\n"
        assert not (mesh.config.state_dir / "schematics").exists()
    finally:
        mesh.stop()

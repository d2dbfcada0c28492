"""The whole mesh as real processes: readiness, one request across processes, one trace."""

from __future__ import annotations

import json
import time

import pytest

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.support.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e


def test_ready_and_one_trace_across_processes(mesh: Mesh, otlp: tuple[OtlpReceiver, int]) -> None:
    receiver, _ = otlp
    status, _, body = http_get(f"{mesh.url}/readyz")
    assert (status, body) == (200, b"")

    status, headers, body = http_get(f"{mesh.url}/schematics/{'a' * 64}", {"X-Request-ID": "e2e-trace-1"})
    assert status == 404
    assert headers["X-Request-ID"] == "e2e-trace-1"
    assert headers["Server"].startswith("Image Factory ")

    def crossing(spans: list[ReceivedSpan]) -> bool:
        gateway = [s for s in spans if s.service == "image-factory-gateway" and "/schematics/" in s.name]
        traces = {s.trace_id for s in gateway}
        return any(
            s.service == "image-factory-schematic" and s.trace_id in traces and "GetSchematic" in s.name for s in spans
        )

    assert receiver.wait_for(crossing, timeout=15), [(s.service, s.name) for s in receiver.spans]
    spans = list(receiver.spans)
    gateway_span = next(s for s in spans if s.service == "image-factory-gateway" and "/schematics/" in s.name)
    in_trace = [s for s in spans if s.trace_id == gateway_span.trace_id]
    assert {s.service for s in in_trace} >= {"image-factory-gateway", "image-factory-schematic"}
    # The schematic service's server span hangs below the gateway's client span (same trace, linked parent).
    server_span = next(s for s in in_trace if s.service == "image-factory-schematic")
    assert server_span.parent_span_id in {s.span_id for s in in_trace if s.service == "image-factory-gateway"}

    # The JSON logs of both processes carry the same request ID and trace ID.
    assert mesh.log_dir is not None
    for process in ("gateway", "schematic"):
        entries = [json.loads(line) for line in (mesh.log_dir / f"{process}.log").read_text().splitlines()]
        mine = [e for e in entries if e.get("request_id") == "e2e-trace-1"]
        assert mine, process
        assert {e.get("trace_id") for e in mine} == {gateway_span.trace_id}, process


def test_readyz_turns_503_when_a_service_stops(mesh: Mesh) -> None:
    assert http_get(f"{mesh.url}/readyz")[0] == 200
    assert mesh.stop_process("cache") == 0  # graceful stop on SIGTERM exits cleanly
    status, _, body = http_get(f"{mesh.url}/readyz")
    assert status == 503
    assert body == b"not ready: cache\n"
    # The rest keeps answering: a request that does not need the cache still works.
    assert http_get(f"{mesh.url}/healthz")[0] == 200
    # Restarting the service makes the mesh ready again without restarting anything else.
    mesh.start_process("cache")
    mesh.wait_serving("cache", deadline=time.monotonic() + 30)
    assert http_get(f"{mesh.url}/readyz")[0] == 200


def test_every_process_serves_prometheus_metrics(mesh: Mesh) -> None:
    http_get(f"{mesh.url}/healthz")
    expected = {
        "gateway": "http_request_duration_seconds_bucket",
        "schematic": "image_factory_schematic_get_total",
        "cache": "image_factory_cache_verification_failures_total",
        "catalog": "process_resident_memory_bytes",
        "builder": "process_resident_memory_bytes",
        "signer": "process_resident_memory_bytes",
    }
    for process, metric in expected.items():
        status, headers, body = http_get(f"http://{mesh.config.metrics.address(process)}/metrics")
        assert status == 200, process
        assert headers["Content-Type"].startswith("text/plain")
        assert metric.encode() in body, (process, metric)

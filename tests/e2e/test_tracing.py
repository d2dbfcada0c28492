"""One trace per image download across the mesh, with the build's stages inside it (issue 10 item 5).

The real mesh runs against the demo release and exports to an OTLP/gRPC receiver on loopback (built
from `opentelemetry-proto`). A cold download must give one trace holding: the gateway's request span
(the root), the builder's EnsureAsset span below it, the schematic, catalog and cache server spans
below the builder's calls, the build stage spans, and the tool runs; a second download of the same
asset is a new trace whose builder span says it was a cache hit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo_release import DemoRelease
from services.mesh.supervisor import Mesh
from services.signer.keys import CosignKey
from tests.e2e.conftest import demo_artifacts, http_get
from tests.e2e.test_boot_initramfs import create_schematic
from tests.support.mesh import make_mesh
from tests.support.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e
PATH = "initramfs-amd64.xz"


@pytest.fixture(scope="module")
def traced_mesh(
    tmp_path_factory: pytest.TempPathFactory,
    otlp: tuple[OtlpReceiver, int],
    demo_release: DemoRelease,
    demo_key: CosignKey,
) -> Iterator[Mesh]:
    _, port = otlp
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    mesh = make_mesh(
        tmp_path_factory.mktemp("traced-mesh"), extra_env=env, artifacts=demo_artifacts(demo_release, demo_key)
    )
    mesh.start(timeout=60)
    yield mesh
    mesh.stop()


def ensure_span(spans: list[ReceivedSpan], schematic: str) -> ReceivedSpan | None:
    for span in spans:
        if (
            span.service == "image-factory-builder"
            and span.name.endswith("BuilderService/EnsureAsset")
            and span.attributes.get("imagefactory.schematic_id") == schematic
            and "imagefactory.cache_hit" in span.attributes
        ):
            return span
    return None


def wait_for_trace(
    receiver: OtlpReceiver, schematic: str, *names: str, services: tuple[str, ...] = ()
) -> list[ReceivedSpan]:
    """The spans of the trace whose builder span is for `schematic`, once spans named `names` arrived and
    every span's parent too (processes export on their own schedule, the gateway's root last)."""

    def complete(spans: list[ReceivedSpan]) -> bool:
        ensure = ensure_span(spans, schematic)
        if ensure is None:
            return False
        mine = [s for s in spans if s.trace_id == ensure.trace_id]
        ids = {s.span_id for s in mine}
        if any(s.parent_span_id and s.parent_span_id not in ids for s in mine):
            return False
        arrived = {s.service for s in mine}
        return all(any(name in s.name for s in mine) for name in names) and set(services) <= arrived

    arrived = receiver.wait_for(complete, timeout=30)
    ensure = ensure_span(list(receiver.spans), schematic)
    assert arrived, describe([s for s in receiver.spans if ensure is not None and s.trace_id == ensure.trace_id])
    assert ensure is not None
    return [s for s in receiver.spans if s.trace_id == ensure.trace_id]


def describe(spans: list[ReceivedSpan]) -> str:
    ids = {s.span_id for s in spans}
    return "\n".join(
        f"{s.service} {s.name} id={s.span_id} parent={s.parent_span_id or '-'}"
        + ("" if not s.parent_span_id or s.parent_span_id in ids else " (parent missing)")
        for s in spans
    )


def test_a_cold_download_is_one_trace_with_its_build_stages(
    traced_mesh: Mesh, otlp: tuple[OtlpReceiver, int], tmp_path: Path
) -> None:
    receiver, _ = otlp
    sid = create_schematic(
        traced_mesh,
        b"customization:\n  extraKernelArgs: [traced=1]\n  systemExtensions:\n"
        b"    officialExtensions: [siderolabs/demo-tools]\n",
    )
    status, _, body = http_get(f"{traced_mesh.url}/image/{sid}/v1.12.1/{PATH}")
    assert status == 200, body

    # Each process exports on its own schedule: wait for every one this request crosses.
    crossed = tuple(
        f"image-factory-{name}" for name in ("gateway", "builder", "schematic", "catalog", "cache", "signer")
    )
    trace = wait_for_trace(receiver, sid, "build fetch", "build initramfs", "build publish", "Put", services=crossed)
    by_id = {s.span_id: s for s in trace}
    roots = [s for s in trace if s.parent_span_id not in by_id]
    assert [(r.service, r.parent_span_id) for r in roots] == [("image-factory-gateway", "")]
    assert roots[0].name == "GET /image/{schematic}/{version}/{path}"

    def ancestors(span: ReceivedSpan) -> list[str]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span.service)
        return chain

    ensure = ensure_span(trace, sid)
    assert ensure is not None and ancestors(ensure)[-1] == "image-factory-gateway"
    assert ensure.attributes["imagefactory.version"] == "v1.12.1"
    assert ensure.attributes["imagefactory.asset_path"] == PATH
    assert ensure.attributes["imagefactory.cache_hit"] is False

    services_below_builder = {
        s.service for s in trace if s.service != "image-factory-builder" and "image-factory-builder" in ancestors(s)
    }
    assert {"image-factory-schematic", "image-factory-catalog", "image-factory-cache"} <= services_below_builder
    # The cache signs what it stores: its call to the signer is in the same trace.
    assert any(s.service == "image-factory-signer" for s in trace)

    stages = {s.name for s in trace if s.name.startswith("build ")}
    assert {"build fetch", "build initramfs", "build publish"} <= stages
    for stage in (s for s in trace if s.name.startswith("build ")):
        assert "image-factory-builder" in {stage.service, *ancestors(stage)}
    tools = [s for s in trace if "tool.argv" in s.attributes]
    assert tools, "the build's tool runs are spans of the same trace"
    assert all(s.attributes.get("tool.exit_code") == 0 for s in tools)


def test_a_cached_download_is_a_new_trace_marked_as_a_hit(traced_mesh: Mesh, otlp: tuple[OtlpReceiver, int]) -> None:
    receiver, _ = otlp
    sid = create_schematic(traced_mesh, b"customization:\n  extraKernelArgs: [traced=2]\n")
    url = f"{traced_mesh.url}/image/{sid}/v1.12.1/cmdline-metal-amd64"
    assert http_get(url)[0] == 200
    first = wait_for_trace(receiver, sid, "build publish")
    with receiver.lock:
        receiver.spans.clear()
    assert http_get(url)[0] == 200
    second = wait_for_trace(receiver, sid)
    assert {s.trace_id for s in second}.isdisjoint({s.trace_id for s in first})
    hit = ensure_span(second, sid)
    assert hit is not None and hit.attributes["imagefactory.cache_hit"] is True
    assert not [s for s in second if s.name.startswith("build ")]

"""OpenTelemetry setup: one tracer provider per process, OTLP export when configured.

W3C trace context is the global propagator (the SDK default), so the gRPC interceptors and the aiohttp
middleware carry one trace across every hop. Spans are exported only when the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) variable is set.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from services.shared.version import VERSION


def setup_tracing(process_name: str) -> TracerProvider:
    """Install and return this process's tracer provider (service.name = image-factory-<name>)."""
    resource = Resource.create(
        {
            "service.name": f"image-factory-{process_name}",
            "service.namespace": "image-factory",
            "service.version": VERSION,
        }
    )
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        # Imported lazily: the exporter pulls in its own gRPC channel setup.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush pending spans; called on graceful stop."""
    provider.force_flush(timeout_millis=5000)
    provider.shutdown()

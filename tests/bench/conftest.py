"""Benchmarks share the e2e fixtures (the demo mesh) and print their figures; run with `make bench`."""

from tests.e2e.conftest import demo_mesh, http_get, otlp  # noqa: F401  (fixtures re-exported)

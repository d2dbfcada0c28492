"""Container health check for the Image Factory images (Docker HEALTHCHECK, compose `healthcheck`).

    python healthcheck.py grpc HOST:PORT [SERVICE]   standard gRPC health service: SERVING → exit 0
    python healthcheck.py http URL                   an HTTP 200 → exit 0

Anything else exits 1 with one line on stderr. Kubernetes does not need this: it probes gRPC natively.
It uses only what the image already has (the standard library and grpcio-health-checking).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def check_grpc(address: str, service: str = "") -> str | None:
    """None when `service` ("" = the whole server) reports SERVING, otherwise why not."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}"  # type: ignore[attr-defined]
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check_http(url: str) -> str | None:
    """None on a 200 answer, otherwise why not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "grpc":
        problem = check_grpc(argv[1], argv[2] if len(argv) == 3 else "")
    elif len(argv) == 2 and argv[0] == "http":
        problem = check_http(argv[1])
    else:
        print("usage: healthcheck.py grpc HOST:PORT [SERVICE] | http URL", file=sys.stderr)
        return 2
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

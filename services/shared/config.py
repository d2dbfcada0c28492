"""Typed configuration for every process of the mesh: a YAML file plus `IF_…` environment overrides.

One file describes the whole mesh (every process reads it and uses its part), so the processes agree on
where each service listens. Keys are matched case-insensitively and without underscores, so the file may
say `externalURL` (as the Go factory does) or `external_url`, and `IF_HTTP_EXTERNALURL` and
`IF_HTTP_EXTERNAL_URL` both reach `http.external_url`. Environment values are parsed as YAML scalars or
flow collections (`IF_HTTP_ALLOWEDORIGINS=["*"]`). Sources, later wins: defaults, file, environment.
Validation happens once, at start, with a one-line error naming the key (as its dotted field path,
e.g. `http.external_url`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

ENV_PREFIX = "IF_"
CONFIG_ENV = "IF_CONFIG"  # path of the YAML file when --config is not given

SERVICE_NAMES = ("schematic", "catalog", "builder", "cache", "signer")
PROCESS_NAMES = ("gateway", *SERVICE_NAMES)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "text"]


class ConfigError(Exception):
    """Invalid configuration; the message names the key and is one line."""


def check_address(key: str, value: str, *, allow_empty: bool = False) -> None:
    """Require `host:port` (IPv6 in brackets); port 0 is allowed (tests pick a free port)."""
    if allow_empty and value == "":
        return
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")


def _check_url(key: str, value: str) -> None:
    if not (value.startswith("http://") or value.startswith("https://")) or len(value.split("/", 3)[2]) == 0:
        raise ConfigError(f"{key}: expected an http:// or https:// URL with a host, got {value!r}")


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where each gRPC service listens (and where the others reach it)."""

    schematic: str = "127.0.0.1:50051"
    catalog: str = "127.0.0.1:50052"
    builder: str = "127.0.0.1:50053"
    cache: str = "127.0.0.1:50054"
    signer: str = "127.0.0.1:50055"

    def __post_init__(self) -> None:
        for name in SERVICE_NAMES:
            check_address(f"services.{name}", getattr(self, name))

    def address(self, name: str) -> str:
        return str(getattr(self, name))


@dataclass(frozen=True)
class HttpConfig:
    """The gateway's HTTP listener and public URLs."""

    listen: str = "127.0.0.1:8080"
    external_url: str = "http://127.0.0.1:8080/"
    external_pxe_url: str = ""  # empty: same as external_url
    allowed_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 1024 * 1024
    # A request body must arrive completely within this many seconds of its headers (slow clients).
    body_timeout_seconds: float = 60.0
    # Send cached assets straight from the cache's files with sendfile(2) when this process can open
    # them (same machine or a shared volume); otherwise, and when false, they stream over gRPC.
    send_cache_files: bool = True

    def __post_init__(self) -> None:
        check_address("http.listen", self.listen)
        _check_url("http.external_url", self.external_url)
        if self.external_pxe_url:
            _check_url("http.external_pxe_url", self.external_pxe_url)
        if self.max_body_bytes <= 0:
            raise ConfigError("http.max_body_bytes: must be positive")
        if self.body_timeout_seconds <= 0:
            raise ConfigError("http.body_timeout_seconds: must be positive")


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus `/metrics` listener per process; an empty address disables it."""

    gateway: str = "127.0.0.1:2122"
    schematic: str = "127.0.0.1:2123"
    catalog: str = "127.0.0.1:2124"
    builder: str = "127.0.0.1:2125"
    cache: str = "127.0.0.1:2126"
    signer: str = "127.0.0.1:2127"

    def __post_init__(self) -> None:
        for name in PROCESS_NAMES:
            check_address(f"metrics.{name}", getattr(self, name), allow_empty=True)

    def address(self, process: str) -> str:
        return str(getattr(self, process))


@dataclass(frozen=True)
class GrpcConfig:
    """Transport limits shared by servers and clients."""

    max_message_bytes: int = 16 * 1024 * 1024
    keepalive_seconds: float = 30.0
    deadline_seconds: float = 30.0  # default for unary calls
    stream_deadline_seconds: float = 1800.0  # builds and large transfers
    shutdown_grace_seconds: float = 5.0
    # Attempts per call when a service is UNAVAILABLE (gRPC allows at most 5). 1 turns client retries
    # off: behind Envoy, which retries itself, two layers would multiply the attempts.
    retry_attempts: int = 4

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"grpc.{f.name}: must be positive")
        if self.retry_attempts > 5:
            raise ConfigError("grpc.retry_attempts: gRPC allows at most 5")


@dataclass(frozen=True)
class SignerConfig:
    """Key files of the signer (friendly to mounted Kubernetes secrets); empty = generate into state_dir."""

    cosign_key_path: str = ""
    secureboot_key_path: str = ""
    secureboot_cert_path: str = ""
    pcr_key_path: str = ""
    # Microsoft's KEK/db certificates (`kek/`, `db/`) for `includeWellKnownCertificates`; empty: not offered.
    well_known_certificates_dir: str = ""

    def __post_init__(self) -> None:
        if bool(self.secureboot_key_path) != bool(self.secureboot_cert_path):
            raise ConfigError("signer.secureboot_key_path and signer.secureboot_cert_path must be set together")


@dataclass(frozen=True)
class OciRepository:
    """A repository in an OCI registry used as a store (`insecure` = plain HTTP, for loopback registries)."""

    registry: str = ""
    repository: str = ""
    insecure: bool = False
    username: str = ""
    password: str = ""

    def check(self, key: str) -> None:
        if not self.registry or not self.repository:
            raise ConfigError(f"{key}: registry and repository must both be set")


@dataclass(frozen=True)
class BuilderConfig:
    """The builder: how many builds run at once and how long one may take (spec §8.1, §13 `build`)."""

    max_concurrency: int = 6
    build_timeout_seconds: float = 1200.0

    def __post_init__(self) -> None:
        if self.max_concurrency <= 0:
            raise ConfigError("builder.max_concurrency: must be positive")
        if self.build_timeout_seconds <= 0:
            raise ConfigError("builder.build_timeout_seconds: must be positive")


@dataclass(frozen=True)
class Components:
    """Upstream repositories below `artifacts.registry/artifacts.namespace` (spec §13)."""

    imager: str = "siderolabs/imager"
    installer_base: str = "siderolabs/installer-base"
    installer: str = "siderolabs/installer"
    extensions: str = "siderolabs/extensions"
    overlays: str = "siderolabs/overlays"
    talosctl: str = "siderolabs/talosctl-all"


@dataclass(frozen=True)
class SignatureSettings:
    """How upstream images are verified (spec §7.2, `containerSignature.*`)."""

    disabled: bool = False
    subject_regexp: str = r"(@siderolabs\.com$|^releasemgr-svc@talos-production\.iam\.gserviceaccount\.com$)"
    issuer: str = "https://accounts.google.com"
    issuer_regexp: str = ""
    public_key_file: str = ""
    public_key_hash_algo: Literal["sha224", "sha256", "sha384", "sha512"] = "sha256"


@dataclass(frozen=True)
class ArtifactsConfig:
    """The upstream Talos release registry the catalog reads (spec §13 `artifacts.core`, `build`)."""

    registry: str = "ghcr.io"
    namespace: str = ""
    insecure: bool = False
    username: str = ""
    password: str = ""
    components: Components = field(default_factory=Components)
    min_talos_version: str = "1.2.0"
    broken_talos_versions: tuple[str, ...] = ()
    version_recheck_seconds: float = 900.0
    tag_recheck_seconds: float = 60.0  # how long a release tag's digest is reused before asking again
    signature: SignatureSettings = field(default_factory=SignatureSettings)

    def repository(self, component: str) -> str:
        """`<namespace>/<component>`, as pulled (the namespace serves pull-through caches)."""
        return "/".join(part for part in (self.namespace.strip("/"), component) if part)


@dataclass(frozen=True)
class SchematicConfig:
    """Schematic storage (spec §6.5, §6.6)."""

    backend: Literal["filesystem", "registry"] = "filesystem"
    root: str = ""  # filesystem backend; empty: <state_dir>/schematics
    oci: OciRepository = field(default_factory=OciRepository)  # registry backend (`artifacts.schematic`)
    cache_capacity: int = 100_000
    negative_ttl_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.cache_capacity <= 0:
            raise ConfigError("schematic.cache_capacity: must be positive")
        if self.negative_ttl_seconds < 0:
            raise ConfigError("schematic.negative_ttl_seconds: must not be negative")
        if self.backend == "registry":
            self.oci.check("schematic.oci")


@dataclass(frozen=True)
class CacheConfig:
    """The asset store (cache service)."""

    backend: Literal["filesystem", "registry"] = "filesystem"
    root: str = ""  # filesystem backend; empty: <state_dir>/cache
    oci: OciRepository = field(default_factory=OciRepository)  # registry backend (spec §8.2 `cache.oci`)
    max_asset_bytes: int = 16 * 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_asset_bytes <= 0:
            raise ConfigError("cache.max_asset_bytes: must be positive")
        if self.backend == "registry":
            self.oci.check("cache.oci")


@dataclass(frozen=True)
class InstallerConfig:
    """Where generated installer images are published and how clients reach them (spec §9.1, §9.5).

    Without `internal.registry` they live in the embedded store (the signed cache) and the gateway
    serves them itself. With it, the builder pushes them to `<internal.registry>/<internal.repository>/
    <image>/<schematic>`; the gateway then redirects clients (307) to the same path under `external`
    (`<host>[/<path>]`, a public name of that registry) or, when `external` is empty, proxies to it.
    """

    internal: OciRepository = field(default_factory=OciRepository)
    external: str = ""

    def __post_init__(self) -> None:
        if self.internal.registry or self.internal.repository:
            self.internal.check("installer.internal")
        if self.external and not self.internal.registry:
            raise ConfigError("installer.external: needs installer.internal (the registry it names)")
        if "://" in self.external:
            raise ConfigError("installer.external: expected <host>[/<path>], without a scheme")

    @property
    def embedded(self) -> bool:
        return not self.internal.registry


@dataclass(frozen=True)
class Config:
    """The whole mesh's configuration; each process reads the parts it needs."""

    state_dir: Path = Path("var/state")
    log_level: LogLevel = "info"
    log_format: LogFormat = "json"
    services: ServiceEndpoints = field(default_factory=ServiceEndpoints)
    http: HttpConfig = field(default_factory=HttpConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    grpc: GrpcConfig = field(default_factory=GrpcConfig)
    signer: SignerConfig = field(default_factory=SignerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    schematic: SchematicConfig = field(default_factory=SchematicConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    builder: BuilderConfig = field(default_factory=BuilderConfig)
    installer: InstallerConfig = field(default_factory=InstallerConfig)


T = TypeVar("T")


def _norm(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _field_map(cls: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {_norm(f.name): f for f in dataclasses.fields(cls)}


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Turn a YAML value into the annotated type, or raise ConfigError naming the key."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping")
        return _build(hint, value, f"{key}.")
    if origin is Literal:
        allowed = get_args(hint)
        text = str(value).lower()
        if text not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")
        return text
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: unions are not supported in config")
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(str(v) for v in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int or hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = hint(str(value))
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        return hint(value)
    if hint is Path:
        return Path(str(value))
    if hint is str:
        if isinstance(value, Mapping | list):
            raise ConfigError(f"{key}: expected a string")
        return "" if value is None else str(value)
    raise ConfigError(f"{key}: unsupported type {hint!r}")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    hints = get_type_hints(cls)
    fields = _field_map(cls)
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = f"{prefix}{raw_key}"
        f = fields.get(_norm(str(raw_key)))
        if f is None:
            raise ConfigError(f"{key}: unknown configuration key")
        kwargs[f.name] = _coerce(key, hints[f.name], value)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the field map above
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _match_env(cls: type[Any], segments: list[str]) -> list[str] | None:
    """Map `HTTP_EXTERNAL_URL` segments onto field names, allowing underscores inside names."""
    if not segments:
        return []
    fields = _field_map(cls)
    hints = get_type_hints(cls)
    for end in range(len(segments), 0, -1):
        f = fields.get(_norm("".join(segments[:end])))
        if f is None:
            continue
        rest = segments[end:]
        hint = hints[f.name]
        if not rest:
            return [f.name]
        if dataclasses.is_dataclass(hint):
            tail = _match_env(hint, rest)  # type: ignore[arg-type]
            if tail is not None:
                return [f.name, *tail]
    return None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _canonical_keys(cls: type[Any], data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Rename file keys to field names so the environment layer merges into the same slots."""
    fields = _field_map(cls)
    hints = get_type_hints(cls)
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        f = fields.get(_norm(str(raw_key)))
        if f is None:
            raise ConfigError(f"{prefix}{raw_key}: unknown configuration key")
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            value = _canonical_keys(hint, value, f"{prefix}{raw_key}.")  # type: ignore[arg-type]
        out[f.name] = value
    return out


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Defaults ← YAML file (`path`, else `$IF_CONFIG`) ← `IF_…` environment variables."""
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({' '.join(str(exc).split())})") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path}: top level must be a mapping")
        data = _canonical_keys(Config, loaded or {})
    overrides: dict[str, Any] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        segments = [s for s in name[len(ENV_PREFIX) :].lower().split("_") if s]
        path_parts = _match_env(Config, segments)
        if path_parts is None:
            continue  # not ours (e.g. another tool's IF_ variable); ignored on purpose
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        _set_path(overrides, path_parts, value)
    return _build(Config, _merge(data, overrides))


def config_to_env(overrides: Mapping[str, Any]) -> dict[str, str]:
    """Flatten `{"http": {"listen": "…"}}` into `IF_HTTP_LISTEN=…` for child processes."""
    out: dict[str, str] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            name = f"{prefix}_{key.upper()}" if prefix else f"{ENV_PREFIX}{key.upper()}"
            if isinstance(value, Mapping):
                walk(name, value)
            elif isinstance(value, list | tuple):
                out[name] = yaml.safe_dump(list(value), default_flow_style=True).strip()
            else:
                out[name] = str(value).lower() if isinstance(value, bool) else str(value)

    walk("", overrides)
    return out

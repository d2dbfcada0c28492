"""The per-version catalogs: extensions, overlays, talosctl files (factory spec §7.3 to §7.5, §2.5, §4).

Pure parsers over the root files of the exported catalog images; the caller fetches and verifies the
image (§7.2) and hands over the file bytes. YAML is read with PyYAML's base loader so every scalar
stays a string, as when Go decodes into `string` fields (`description: 1.10` is "1.10", not 1.1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import yaml

from services.catalog.errors import CatalogFormatError
from services.catalog.versions import Version
from services.shared.errors import FactoryError, InvalidArgument
from services.shared.oci.reference import parse_reference

IMAGE_DIGESTS: Final = "image-digests"
DESCRIPTIONS: Final = "descriptions.yaml"
OVERLAYS: Final = "overlays.yaml"
_YAML_NULLS: Final = frozenset({"", "~", "null", "Null", "NULL"})
_Loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

# Renamed official extensions: a schematic written for the old name still builds (spec §4,
# `ExtensionNameAlias`).
EXTENSION_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "siderolabs/v4l-uvc": "siderolabs/v4l-uvc-drivers",
        "siderolabs/usb-modem": "siderolabs/usb-modem-drivers",
        "siderolabs/gasket": "siderolabs/gasket-driver",
        "siderolabs/talos-vmtoolsd": "siderolabs/vmtoolsd-guest-agent",
        "siderolabs/xe-guest-utilities": "siderolabs/xen-guest-agent",
        "siderolabs/nvidia-container-toolkit": "siderolabs/nvidia-container-toolkit-lts",
        "siderolabs/nvidia-open-gpu-kernel-modules": "siderolabs/nvidia-open-gpu-kernel-modules-lts",
        "siderolabs/nonfree-kmod-nvidia": "siderolabs/nonfree-kmod-nvidia-lts",
        "siderolabs/nvidia-fabricmanager": "siderolabs/nvidia-fabric-manager-lts",
        "siderolabs/i915-ucode": "siderolabs/i915",
        "siderolabs/amdgpu-firmware": "siderolabs/amdgpu",
    }
)


@dataclass(frozen=True)
class ExtensionEntry:
    """One line of `image-digests` (spec §7.3); field names follow the API's `ExtensionInfo` (§2.5)."""

    name: str  # repository path without registry: the identity schematics use, e.g. `siderolabs/gvisor`
    ref: str  # `<core registry>/<name>:<tag>`: the catalog line's registry replaced, never a namespace
    digest: str  # the text after `@`, as written
    author: str = ""
    description: str = ""
    pull_repository: str = ""  # `<core registry>[/<namespace>]/<name>`: where the image is pulled from
    tag: str = ""


@dataclass(frozen=True)
class OverlayEntry:
    """One entry of `overlays.yaml` (spec §7.4, §2.5)."""

    name: str  # overlay name, e.g. `rpi_generic`
    image: str  # repository path, e.g. `siderolabs/sbc-raspberrypi`
    ref: str  # the `image` field as written
    digest: str
    pull_repository: str = ""


@dataclass(frozen=True)
class TalosctlFile:
    """A `talosctl-<os>-<arch>[.exe]` root file of `talosctl-all` (spec §7.5)."""

    os: str
    arch: str
    ext: str = ""

    @property
    def name(self) -> str:
        return f"talosctl-{self.os}-{self.arch}{self.ext}"


def repository_with_namespace(registry: str, namespace: str, repository: str) -> str:
    """`<registry>/<namespace>/<repo>`, empty parts skipped (spec §7.2 `registryWithNamespace`)."""
    return "/".join(p for p in (registry, namespace.strip("/"), repository) if p)


def parse_extensions(files: Mapping[str, bytes], *, registry: str, namespace: str = "") -> list[ExtensionEntry]:
    """`image-digests` (+ optional `descriptions.yaml`) → entries in catalog order (spec §7.3)."""
    digests = files.get(IMAGE_DIGESTS)
    descriptions = _parse_descriptions(files[DESCRIPTIONS]) if DESCRIPTIONS in files else {}
    entries: list[ExtensionEntry] = []
    # Go's bufio.Scanner: lines split on \n with a trailing \r dropped, then trimmed.
    for raw in (digests or b"").decode("utf-8", errors="replace").split("\n"):
        line = raw.strip()
        tagged, at, digest = line.partition("@")
        if not at:
            continue
        repository, tag = _parse_tagged(tagged)
        author, description = descriptions.get(line, ("", ""))
        entries.append(
            ExtensionEntry(
                name=repository,
                ref=f"{registry}/{repository}:{tag}",
                digest=digest,
                author=author,
                description=description,
                pull_repository=repository_with_namespace(registry, namespace, repository),
                tag=tag,
            )
        )
    if not entries:
        # Also when the file exists but holds no `@` line: Go checks the parsed list, not the file.
        raise CatalogFormatError("failed to find image-digests file")
    return entries


def _parse_descriptions(data: bytes) -> dict[str, tuple[str, str]]:
    """`descriptions.yaml`: a map keyed by the full catalog line → (author, description)."""
    doc = _load_yaml(data, DESCRIPTIONS)
    if _is_null(doc):
        return {}
    if not isinstance(doc, dict):
        raise CatalogFormatError(f"error reading {DESCRIPTIONS} file: expected a mapping")
    result: dict[str, tuple[str, str]] = {}
    for key, value in doc.items():
        if _is_null(value):
            value = {}
        if not isinstance(value, dict):
            raise CatalogFormatError(f"error reading {DESCRIPTIONS} file: entry {key!r} is not a mapping")
        result[str(key)] = (_scalar(value.get("author"), DESCRIPTIONS), _scalar(value.get("description"), DESCRIPTIONS))
    return result


def parse_overlays(files: Mapping[str, bytes], *, registry: str, namespace: str = "") -> list[OverlayEntry]:
    """`overlays.yaml` → entries in file order (spec §7.4)."""
    entries: list[OverlayEntry] = []
    if OVERLAYS in files:
        doc = _load_yaml(files[OVERLAYS], OVERLAYS)
        if not _is_null(doc) and not isinstance(doc, dict):
            raise CatalogFormatError(f"error reading {OVERLAYS} file: expected a mapping")
        items = doc.get("overlays") if isinstance(doc, dict) else None
        if _is_null(items):
            items = []
        if not isinstance(items, list):
            raise CatalogFormatError(f"error reading {OVERLAYS} file: overlays is not a list")
        for item in items:
            if not isinstance(item, dict):
                raise CatalogFormatError(f"error reading {OVERLAYS} file: overlay entry is not a mapping")
            name, image, digest = (_scalar(item.get(k), OVERLAYS) for k in ("name", "image", "digest"))
            repository, _ = _parse_tagged(image)
            entries.append(
                OverlayEntry(
                    name=name,
                    image=repository,
                    ref=image,
                    digest=digest,
                    pull_repository=repository_with_namespace(registry, namespace, repository),
                )
            )
    if not entries:
        raise CatalogFormatError("failed to find overlays.yaml file")
    return entries


def parse_talosctl_files(names: Iterable[str]) -> list[TalosctlFile]:
    """Root file names of `talosctl-all` → (os, arch, ext), in the order given (spec §7.5)."""
    files: list[TalosctlFile] = []
    for name in names:
        if not name.startswith("talosctl-"):
            continue  # anything else in the image is ignored
        rest = name.removeprefix("talosctl-")
        ext = ".exe" if rest.endswith(".exe") else ""
        parts = rest.removesuffix(".exe").split("-")
        if len(parts) != 2:
            raise CatalogFormatError(f"invalid talosctl file name {name}")
        files.append(TalosctlFile(parts[0], parts[1], ext))
    if not files:
        raise CatalogFormatError("failed to find talosctl binaries")
    return files


def find_extension(catalog: Sequence[ExtensionEntry], requested: str, version: Version) -> ExtensionEntry:
    """The catalog entry for a schematic's extension name, trying the alias table second (spec §4 step 5)."""
    for name in (requested, EXTENSION_ALIASES.get(requested)):
        for entry in catalog:
            if name is not None and entry.name == name:
                return entry
    raise InvalidArgument(f"official extension {_go_quote(requested)} is not available for Talos version {version.tag}")


def find_overlay(catalog: Sequence[OverlayEntry], name: str, version: Version) -> OverlayEntry:
    """The overlay named in a schematic (spec §4 step 5).

    The Go text formats a zero struct with `%q` (a bug, spec §4); the requested name is used instead.
    """
    for entry in catalog:
        if entry.name == name:
            return entry
    raise InvalidArgument(f"official overlay {_go_quote(name)} is not available for Talos version {version.tag}")


def _parse_tagged(text: str) -> tuple[str, str]:
    """`[registry/]repo[:tag]` → (repository path, tag); Go `name.NewTag` defaults the tag to `latest`."""
    try:
        ref = parse_reference(text)
    except FactoryError as exc:
        raise CatalogFormatError(f"failed to parse tagged reference {text}: {exc.message}") from None
    return ref.repository, ref.tag or "latest"


def _load_yaml(data: bytes, what: str) -> object:
    try:
        return yaml.load(data, Loader=_Loader)  # the base loader builds only str, list and dict
    except yaml.YAMLError as exc:
        raise CatalogFormatError(f"error reading {what} file: {' '.join(str(exc).split())}") from None


def _is_null(value: object) -> bool:
    return value is None or (isinstance(value, str) and value in _YAML_NULLS)


def _scalar(value: object, what: str) -> str:
    if _is_null(value):
        return ""
    if not isinstance(value, str):
        raise CatalogFormatError(f"error reading {what} file: expected a string, got {type(value).__name__}")
    return value


def _go_quote(text: str) -> str:
    """Go's `%q` for the names that occur here: a JSON string is the same for printable text."""
    return json.dumps(text, ensure_ascii=False)

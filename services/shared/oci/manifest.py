"""Typed views of manifests and descriptors, so raw JSON dicts stop at this module (STYLE §5)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.shared.errors import NotFound, VerificationFailed

from . import media_types
from .reference import digest_of, is_digest


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def matches(self, other: Platform) -> bool:
        """`other` is what we ask for; no variant there means any variant."""
        return (
            self.os == other.os
            and self.architecture == other.architecture
            and (other.variant is None or self.variant == other.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (the entries of `layers`, `manifests` and referrers indexes)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        # A registry (or whoever pushed the manifest) controls these bytes: check shapes, not trust.
        if not isinstance(obj, dict):
            raise VerificationFailed("malformed descriptor: not an object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str) or not is_digest(digest):
            raise VerificationFailed(f"malformed descriptor: mediaType={media_type!r} digest={digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise VerificationFailed(f"malformed descriptor {digest}: size={size!r}")
        artifact_type = obj.get("artifactType")
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
            annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
            platform=_platform_from_json(platform) if isinstance(platform, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type is not None:
            obj["artifactType"] = self.artifact_type
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        if self.platform is not None:
            obj["platform"] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                obj["platform"]["variant"] = self.platform.variant
        return obj


def _platform_from_json(obj: dict[str, Any]) -> Platform:
    variant = obj.get("variant")
    return Platform(
        os=str(obj.get("os", "")),
        architecture=str(obj.get("architecture", "")),
        variant=str(variant) if variant else None,
    )


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry sent it; `digest` is sha256 of `data`."""

    data: bytes
    media_type: str
    digest: str

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str) -> Manifest:
        return cls(data, media_type, digest_of(data))

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def is_index(self) -> bool:
        return media_types.is_index(self.media_type)

    def json(self) -> dict[str, Any]:
        try:
            obj = json.loads(self.data)
        except ValueError as exc:
            raise VerificationFailed(f"manifest {self.digest} is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise VerificationFailed(f"manifest {self.digest} is not a JSON object")
        return obj

    def descriptor(self, platform: Platform | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, platform=platform)

    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.json().get("layers") or []]

    def config(self) -> Descriptor:
        return Descriptor.from_json(self.json().get("config"))

    def manifests(self) -> list[Descriptor]:
        """Children of an index (or of a referrers response)."""
        return [Descriptor.from_json(d) for d in self.json().get("manifests") or []]

    def select(self, platform: Platform) -> Descriptor:
        """The first child of this index built for `platform`, as go-containerregistry picks it."""
        for child in self.manifests():
            if child.platform is not None and child.platform.matches(platform):
                return child
        raise NotFound(f"no {platform} manifest in index {self.digest}")


def specific_media_type(content_type: str | None) -> str | None:
    """The Content-Type without parameters, unless it is a generic one that says nothing.

    Some registries answer `application/json` or nothing for manifests pushed without a type.
    """
    value = (content_type or "").split(";", 1)[0].strip()
    if value and value not in {"application/json", "text/plain", "application/octet-stream"}:
        return value
    return None


def media_type_of(content_type: str | None, data: bytes) -> str:
    """The manifest's media type: the Content-Type the registry sent, else the `mediaType` field."""
    if (value := specific_media_type(content_type)) is not None:
        return value
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        declared = obj.get("mediaType")
        if isinstance(declared, str) and declared:
            return declared
        # Neither header nor field: the OCI spec says an object with `manifests` is an index.
        return media_types.OCI_INDEX if "manifests" in obj else media_types.OCI_MANIFEST
    return media_types.OCI_MANIFEST


def index_bytes(children: list[Descriptor], *, annotations: Mapping[str, str] | None = None) -> bytes:
    """Serialise an OCI image index (for example a referrers response, spec §9.6)."""
    obj: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_types.OCI_INDEX,
        "manifests": [c.to_json() for c in children],
    }
    if annotations:
        obj["annotations"] = dict(annotations)
    return json.dumps(obj, separators=(",", ":")).encode()

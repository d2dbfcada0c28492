"""Typed views of the factory's JSON answers (field names as in the reference's `pkg/client`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExtensionInfo:
    """One line of `GET /version/<v>/extensions/official` (factory spec §2.5)."""

    name: str
    ref: str
    digest: str
    author: str = ""
    description: str = ""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExtensionInfo:
        return cls(
            name=str(raw["name"]),
            ref=str(raw["ref"]),
            digest=str(raw["digest"]),
            author=str(raw.get("author") or ""),
            description=str(raw.get("description") or ""),
        )


@dataclass(frozen=True)
class OverlayInfo:
    """One line of `GET /version/<v>/overlays/official` (factory spec §2.5)."""

    name: str
    image: str
    ref: str
    digest: str

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> OverlayInfo:
        return cls(name=str(raw["name"]), image=str(raw["image"]), ref=str(raw["ref"]), digest=str(raw["digest"]))


@dataclass(frozen=True)
class AssetInfo:
    """What a `HEAD` of an asset tells without its body."""

    size: int | None
    media_type: str
    etag: str | None
    file_name: str | None


@dataclass(frozen=True)
class Downloaded:
    """A completed download."""

    path: Path
    size: int
    sha256: str  # lowercase hex of the whole file
    resumed_from: int  # bytes already on disk when the final attempt started (0: from scratch)
    attempts: int  # requests made, 1 when nothing went wrong

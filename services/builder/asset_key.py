"""Asset key: the cache identity of one build (factory spec §5, STYLE §8).

key = sha256 of a canonical JSON document holding
  * `BUILDER_FORMAT_VERSION`,
  * the enhanced profile, normalized (every field, enums as their text, the version as written,
    overlay options as their canonical YAML),
  * every input digest the caller passes (`inputs`: name → digest), e.g.
    `imager/vmlinuz`, `imager/initramfs`, `imager/sd-boot`, `imager/sd-stub` (files of the imager
    image for the version and arch), `extension/<name>` (the arch manifest actually pulled),
    `overlay/<arch>` (host and target copies), `base-installer`, `schematic-extension` (the tarball),
    `signer/secureboot-certificate` and `signer/pcr-public-key` for SecureBoot builds (planning.py),
  * the tags of the `KEY_SALTS` that apply to the profile.

Our keys are not the Go service's keys (`Hash` over go-yaml bytes plus its errata, §5): we keep a
different asset store and need not share it. What matters is the other direction: the key must change
whenever the output bytes could change. Anything the bytes depend on is either in the profile, in an
input digest, or covered by `BUILDER_FORMAT_VERSION` (the code). Take the key of the profile as
`enhance` returns it, before `fill_output_defaults` (the defaults are a function of the profile).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from typing import Any, Final

from services.builder import quirks
from services.builder.enums import OutputKind
from services.builder.meta import GZIP_THRESHOLD, join_meta
from services.builder.profile import Profile
from services.catalog.versions import Version
from services.schematic.canonical import options_yaml
from services.schematic.model import OptionMap

# Bump whenever the builder's output changes for every asset, or when this document changes shape.
BUILDER_FORMAT_VERSION: Final = 1


@dataclass(frozen=True)
class KeySalt:
    """A targeted rebuild: `tag` joins the key of every profile for which `applies` holds.

    Add an entry (never edit or reorder old ones without meaning to rebuild) when a fix changes the
    bytes of only some assets; say why in a comment and link the issue or spec section.
    """

    tag: str
    applies: Callable[[Profile], bool]


def _meta_gzipped_on_cmdline(p: Profile) -> bool:
    meta = p.customization.meta_contents
    return (
        bool(meta)
        and p.output.kind.meta_on_cmdline
        and p.version is not None
        and quirks.supports_compressed_encoded_meta(p.version)
        and len(join_meta(meta)) > GZIP_THRESHOLD
    )


def _secureboot_without_lockdown(p: Profile) -> bool:
    return p.secureboot and p.version is not None and not quirks.forces_lockdown_confidentiality(p.version)


def _overlay_installer_runs(p: Profile) -> bool:
    return p.overlay is not None and p.output.kind in (
        OutputKind.UKI, OutputKind.ISO, OutputKind.INSTALLER, OutputKind.IMAGE,
    )  # fmt: skip


KEY_SALTS: Final[tuple[KeySalt, ...]] = (
    # Long META on the cmdline is gzip'ed by zlib under a Go-style header; the deflate bytes differ
    # from Go's compress/flate (imager §8.2, `meta.py`). Should we ever emit Go-exact bytes, replace
    # this tag and exactly these ISO/UKI/cmdline assets get rebuilt.
    KeySalt("meta-gzip-zlib-9", _meta_gzipped_on_cmdline),
    # SecureBoot cmdlines drop `lockdown=confidentiality` from 1.14 (imager §2.5
    # ForcesLockdownConfidentiality) although factory §11 step 6 lists it unconditionally; this
    # records the choice so that flipping it rebuilds only the affected assets.
    KeySalt("secureboot-lockdown-before-1.14-only", _secureboot_without_lockdown),
    # Issue 7: the overlay installer's `get-options` kernel args now reach every command line and its
    # partition offset / `install` step every disk image (imager §10); earlier builds of overlay
    # schematics lacked both under the same upstream digests.
    KeySalt("overlay-installer-get-options-install", _overlay_installer_runs),
)


def canonical_profile(profile: Profile) -> Any:
    """The profile as JSON-ready data; every dataclass field is present, in a fixed form."""
    return _normalize(profile)


def key_document(profile: Profile, inputs: Mapping[str, str]) -> bytes:
    """The exact bytes that are hashed (sorted keys, no whitespace, ASCII only)."""
    for name, digest in inputs.items():
        if not isinstance(name, str) or not name or not isinstance(digest, str) or not digest:
            raise ValueError(f"input digests need a non-empty name and digest, got {name!r}: {digest!r}")
    doc = {
        "format": BUILDER_FORMAT_VERSION,
        "profile": canonical_profile(profile),
        "inputs": dict(inputs),
        "salts": [salt.tag for salt in KEY_SALTS if salt.applies(profile)],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def asset_key(profile: Profile, inputs: Mapping[str, str]) -> str:
    """Lowercase hex sha256 of `key_document` (64 characters)."""
    return hashlib.sha256(key_document(profile, inputs)).hexdigest()


def _normalize(value: object) -> Any:
    if isinstance(value, Version):
        return str(value)  # the tag as requested, pre-release and build metadata included
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _normalize(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, OptionMap):
        # Go-typed canonical YAML: keeps `1` and `"1"` apart, which JSON object keys could not.
        return options_yaml(value)
    if isinstance(value, (tuple, list)):
        return [_normalize(item) for item in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    raise TypeError(f"cannot put {type(value).__name__} into an asset key")

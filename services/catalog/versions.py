"""Talos versions: semver parsing and the list of versions the factory offers (factory spec §7.1, §2.4).

`Version` follows semver 2.0 precedence (build metadata ignored, pre-release below release, numeric
identifiers below alphanumeric ones). Parsing mirrors blang/semver v4, which the Go service uses:
`parse` is its strict `Parse`, `parse_tolerant` its `ParseTolerant` (leading `v`, missing minor/patch,
leading zeros). Written here rather than pulled in: `packaging.version` is PEP 440, not semver, and the
semver packages on PyPI differ from blang on exactly these tolerant-parse corners.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from services.shared.config import ConfigError
from services.shared.errors import InvalidArgument, NotFound

DEFAULT_MIN_VERSION: Final = "1.2.0"
# blang/semver parses components as uint64.
_UINT64_MAX: Final = 2**64 - 1
_DIGITS: Final = re.compile(r"[0-9]*")
_IDENTIFIER: Final = re.compile(r"[0-9A-Za-z-]*")
_ALLOWED_PRE: Final = frozenset({"alpha", "beta", "rc"})


class InvalidVersion(InvalidArgument):
    """A version string that is not semver (spec §2.5: the Go service answers these with 500)."""


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()
    # Build metadata has no precedence (semver §10), so it takes no part in ==, hash or ordering.
    build: tuple[str, ...] = field(default=(), compare=False)

    def _key(self) -> tuple[int, int, int, tuple[object, ...]]:
        # A release sorts above all its pre-releases; numeric identifiers sort below alphanumeric ones;
        # a longer identifier list wins when all shared identifiers are equal (semver §11).
        pre: tuple[object, ...] = (
            (1,) if not self.pre else (0, *((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre))
        )
        return (self.major, self.minor, self.patch, pre)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    @property
    def tag(self) -> str:
        """The image tag / URL form, `v` + semver (spec §2.4)."""
        return f"v{self}"

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(str(p) for p in self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse(text: str) -> Version:
    """Strict semver `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, no leading `v` (blang `semver.Parse`)."""
    if not text:
        raise InvalidVersion("version string empty")
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise InvalidVersion(f"no Major.Minor.Patch elements found in {text!r}")
    major = _number(parts[0], "major", text)
    minor = _number(parts[1], "minor", text)
    rest, plus, build_text = parts[2].partition("+")
    patch_text, dash, pre_text = rest.partition("-")
    patch = _number(patch_text, "patch", text)
    pre = tuple(_pre_identifier(p, text) for p in pre_text.split(".")) if dash else ()
    build = tuple(_build_identifier(b, text) for b in build_text.split(".")) if plus else ()
    return Version(major, minor, patch, pre, build)


def parse_tolerant(text: str) -> Version:
    """blang `ParseTolerant`: trims spaces and one leading `v`, strips leading zeros, fills `1.7` → `1.7.0`."""
    text = text.strip().removeprefix("v")
    parts = text.split(".", 2)
    for i, part in enumerate(parts):
        if len(part) > 1:
            stripped = part.lstrip("0")
            parts[i] = stripped if stripped[:1] and stripped[0] in "0123456789" else "0" + stripped
    if len(parts) < 3:
        if "+" in parts[-1] or "-" in parts[-1]:
            raise InvalidVersion(f"short version cannot contain pre-release/build metadata: {text!r}")
        parts += ["0"] * (3 - len(parts))
    return parse(".".join(parts))


def parse_requested(text: str) -> Version:
    """A version from a URL or request: `v` prepended if missing, then strict (spec §2.5, `v1.7` fails)."""
    return parse(text.removeprefix("v"))


def _number(part: str, what: str, text: str) -> int:
    if not part or _DIGITS.fullmatch(part) is None:
        raise InvalidVersion(f"invalid character(s) found in {what} number {part!r} of {text!r}")
    if len(part) > 1 and part[0] == "0":
        raise InvalidVersion(f"{what} number must not contain leading zeroes {part!r} in {text!r}")
    return _uint64(part, text)


def _pre_identifier(part: str, text: str) -> int | str:
    if not part:
        raise InvalidVersion(f"pre-release identifier is empty in {text!r}")
    if _DIGITS.fullmatch(part):
        if len(part) > 1 and part[0] == "0":
            raise InvalidVersion(f"numeric pre-release identifier must not contain leading zeroes {part!r}")
        return _uint64(part, text)
    if _IDENTIFIER.fullmatch(part) is None:
        raise InvalidVersion(f"invalid character(s) found in pre-release {part!r} of {text!r}")
    return part


def _build_identifier(part: str, text: str) -> str:
    if not part or _IDENTIFIER.fullmatch(part) is None:
        raise InvalidVersion(f"invalid build metadata {part!r} in {text!r}")
    return part


def _uint64(part: str, text: str) -> int:
    value = int(part)
    if value > _UINT64_MAX:
        raise InvalidVersion(f"value out of range in {text!r}")
    return value


@dataclass(frozen=True)
class VersionPolicy:
    """Which tags become offered versions: `build.minTalosVersion` and `build.brokenTalosVersions` (§13)."""

    min_version: Version = Version(1, 2, 0)
    broken: tuple[Version, ...] = ()

    @classmethod
    def from_config(cls, min_version: str = DEFAULT_MIN_VERSION, broken: Sequence[str] = ()) -> VersionPolicy:
        """Strict parse at startup; a bad value stops the service (spec §7.1)."""
        try:
            minimum = parse(min_version)
        except InvalidVersion as exc:
            raise ConfigError(f"failed to parse minimum Talos version: {exc.message}") from None
        parsed = []
        for text in broken:
            try:
                parsed.append(parse(text))
            except InvalidVersion as exc:
                raise ConfigError(f'failed to parse broken Talos version "{text}": {exc.message}') from None
        return cls(minimum, tuple(parsed))

    def available(self, tags: Iterable[str]) -> list[Version]:
        """The offered versions, ascending (spec §7.1).

        Pre-releases are kept only for the newest minor line, judged by the maximum over *all* parsable
        tags before filtering (spec §18.14 notes the quirk; kept for parity). Duplicates (`v1.7` and
        `v1.7.0` both present) are listed once.
        """
        parsed: set[Version] = set()
        for tag in tags:
            try:
                parsed.add(parse_tolerant(tag))
            except InvalidVersion:
                continue  # `latest`, `sha256-….sig` and other non-version tags
        if not parsed:
            return []
        newest = max(parsed)
        return sorted(v for v in parsed if self._keep(v, newest))

    def _keep(self, version: Version, newest: Version) -> bool:
        if version < self.min_version or version in self.broken:
            return False
        if not version.pre:
            return True
        return (
            (version.major, version.minor) == (newest.major, newest.minor)
            and len(version.pre) == 2
            and version.pre[0] in _ALLOWED_PRE
            and isinstance(version.pre[1], int)
        )


def latest_stable(versions: Iterable[Version]) -> Version | None:
    """The highest version without a pre-release part (`latest` in the registry frontend, spec §9.2)."""
    return max((v for v in versions if not v.pre), default=None)


def require_available(version: Version, available: Iterable[Version]) -> Version:
    """`404 version <x.y.z> is not available` unless offered (spec §2.5, §7.1 `ErrNotFoundTag`)."""
    if version not in set(available):
        raise NotFound(f"version {version} is not available")
    return version


# Version gates from Talos `quirks` that decide what the catalog lists (spec §2.5, §2.7).
def supports_overlays(version: Version) -> bool:
    # Talos quirks compare the release part only: 1.7.0-alpha.0 already supports overlays.
    return Version(version.major, version.minor, version.patch) >= Version(1, 7, 0)


def supports_factory_talosctl(version: Version) -> bool:
    return version >= Version(1, 11, 0, ("alpha", 3))

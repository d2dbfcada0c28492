"""The schematic data model (spec §6.1, `IF:pkg/schematic/schematic.go`).

Field order inside every dataclass is the Go struct field order: the canonical YAML (and therefore the
schematic ID) lists fields in exactly this order, so never reorder them.

Everything is immutable: lists are tuples and `overlay.options` is an `OptionMap`, an immutable mapping
that keeps the Go type of every key and value (an int key `1` and a string key `"1"` are different keys
and marshal differently, exactly as in Go's `map[any]any`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias, Union


class Bootloader(StrEnum):
    """Talos `imageropts.BootloaderKind`; `none` is the zero value and is never serialized."""

    NONE = "none"
    DUAL_BOOT = "dual-boot"
    SD_BOOT = "sd-boot"
    GRUB = "grub"


@dataclass(frozen=True, order=True)
class GoTime:
    """A YAML timestamp as Go's `time.Time` keeps it: wall clock fields plus a fixed UTC offset.

    Only overlay options can hold one (a plain `2024-01-02` decodes to `time.Time` inside `any`), and Go
    re-marshals it as RFC 3339 with nanoseconds, so `2024-01-02` becomes `2024-01-02T00:00:00Z`.
    """

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0
    nanosecond: int = 0
    offset_seconds: int = 0

    def rfc3339nano(self) -> str:
        """Go `time.RFC3339Nano`: trailing fraction zeros trimmed, `Z` for a zero offset."""
        text = f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        if self.nanosecond:
            text += "." + f"{self.nanosecond:09d}".rstrip("0")
        if self.offset_seconds == 0:
            return text + "Z"
        sign = "-" if self.offset_seconds < 0 else "+"
        minutes = abs(self.offset_seconds) // 60
        return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


OptionKey: TypeAlias = bool | int | float | str | GoTime | None
OptionValue: TypeAlias = Union[bool, int, float, str, GoTime, tuple["OptionValue", ...], "OptionMap", None]


def option_identity(value: object) -> object:
    """A hashable form that tells apart what Python conflates (`True == 1 == 1.0`) but Go does not."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        # NaN never equals itself; compare its text so a NaN option still equals its own copy.
        return ("float", "nan") if math.isnan(value) else ("float", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, GoTime):
        return ("time", value)
    if isinstance(value, tuple):
        return ("seq", tuple(option_identity(item) for item in value))
    if isinstance(value, OptionMap):
        return ("map", value._identity)
    raise TypeError(f"unsupported overlay option value of type {type(value).__name__}")


class OptionMap(Mapping[OptionKey, OptionValue]):
    """Immutable mapping for `overlay.options` (Go `map[string]any`, nested maps `map[any]any`).

    Insertion order is kept for readability only; the canonical marshaler sorts keys the Go way.
    Values are frozen recursively: lists become tuples, dicts become `OptionMap`s.
    """

    __slots__ = ("_entries", "_identity")

    def __init__(self, items: Iterable[tuple[Any, Any]] | Mapping[Any, Any] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        entries: dict[object, tuple[OptionKey, OptionValue]] = {}
        for key, value in pairs:
            frozen_key = freeze_option(key)
            if isinstance(frozen_key, (tuple, OptionMap)):
                raise TypeError("overlay option keys must be scalars")
            # A later duplicate overwrites an earlier one, as Go's map assignment does.
            entries[option_identity(frozen_key)] = (frozen_key, freeze_option(value))
        self._entries = entries
        self._identity = frozenset((k, option_identity(v)) for k, (_, v) in entries.items())

    def __getitem__(self, key: OptionKey) -> OptionValue:
        return self._entries[option_identity(key)][1]

    def __iter__(self) -> Iterator[OptionKey]:
        return (key for key, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        try:
            return option_identity(key) in self._entries
        except TypeError:
            return False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OptionMap):
            return self._identity == other._identity
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._identity)

    def __repr__(self) -> str:
        return f"OptionMap({list(self.items())!r})"

    def to_python(self) -> dict[Any, Any]:
        """Plain nested dicts/lists, e.g. to hand the options to another YAML or JSON writer."""
        return {key: _thaw(value) for key, value in self.items()}


def freeze_option(value: Any) -> OptionValue:
    """Turn plain Python data (dicts, lists) into the immutable option representation."""
    if value is None or isinstance(value, (bool, int, float, str, GoTime, OptionMap)):
        return value
    if isinstance(value, Mapping):
        return OptionMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(freeze_option(item) for item in value)
    raise TypeError(f"unsupported overlay option value of type {type(value).__name__}")


def _thaw(value: OptionValue) -> Any:
    if isinstance(value, OptionMap):
        return value.to_python()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


EMPTY_OPTIONS = OptionMap()


@dataclass(frozen=True)
class Overlay:
    image: str = ""
    name: str = ""
    options: OptionMap = EMPTY_OPTIONS


@dataclass(frozen=True)
class MetaValue:
    key: int = 0  # Go uint8
    value: str = ""


@dataclass(frozen=True)
class SystemExtensions:
    official_extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecureBootCustomization:
    enroll_keys: str = ""
    include_well_known_certificates: bool = False


@dataclass(frozen=True)
class DiskImageCustomization:
    sector_size: int = 0  # Go uint


@dataclass(frozen=True)
class Customization:
    embedded_machine_configuration: str = ""
    extra_kernel_args: tuple[str, ...] = ()
    meta: tuple[MetaValue, ...] = ()
    system_extensions: SystemExtensions = field(default_factory=SystemExtensions)
    bootloader: Bootloader = Bootloader.NONE
    secureboot: SecureBootCustomization = field(default_factory=SecureBootCustomization)
    disk_image: DiskImageCustomization = field(default_factory=DiskImageCustomization)


@dataclass(frozen=True)
class Schematic:
    owner: str = ""  # enterprise only; the community edition rejects a non-empty owner
    overlay: Overlay = field(default_factory=Overlay)
    customization: Customization = field(default_factory=Customization)

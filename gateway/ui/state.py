"""The wizard's state, carried entirely in form fields and query strings (factory spec §12).

Pure: no I/O and no aiohttp. A field is *committed* once its step was submitted; a committed field
that the user stepped back over is kept as a `selected-<field>` mirror, so the step shows the earlier
choice again and the next steps keep theirs. The first step whose fields are not committed is the one
to show; `Hx-Push-Url` and the no-JS forms put the same fields in the URL, so a reload or the back
button lands on the same step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Final
from urllib.parse import urlencode

SELECTED_PREFIX: Final = "selected-"
# Marks "the extensions step was submitted with nothing checked" (an empty checkbox group sends nothing).
NO_EXTENSIONS: Final = "-"


class Step(StrEnum):
    TARGET = "target"
    VERSION = "version"
    CLOUD = "cloud"
    SBC = "sbc"
    ARCH = "arch"
    EXTENSIONS = "extensions"
    CUSTOMIZATION = "customization"
    FINAL = "final"


class Target(StrEnum):
    METAL = "metal"
    CLOUD = "cloud"
    SBC = "sbc"


# Which form fields each step owns; `cmdline-set` marks the customization step as submitted even when
# every one of its fields is empty.
STEP_FIELDS: Final[Mapping[Step, tuple[str, ...]]] = MappingProxyType(
    {
        Step.TARGET: ("target",),
        Step.VERSION: ("version",),
        Step.CLOUD: ("platform",),
        Step.SBC: ("board",),
        Step.ARCH: ("arch", "secureboot"),
        Step.EXTENSIONS: ("extensions",),
        Step.CUSTOMIZATION: ("cmdline", "cmdline-set", "embedded-config", "overlay-options", "bootloader"),
        Step.FINAL: (),
    }
)
# The field whose presence says that a step was submitted.
STEP_MARKER: Final[Mapping[Step, str]] = MappingProxyType(
    {
        Step.TARGET: "target",
        Step.VERSION: "version",
        Step.CLOUD: "platform",
        Step.SBC: "board",
        Step.ARCH: "arch",
        Step.EXTENSIONS: "extensions",
        Step.CUSTOMIZATION: "cmdline-set",
    }
)
FIELDS: Final = tuple(name for names in STEP_FIELDS.values() for name in names)
MULTI_VALUED: Final = frozenset({"extensions"})
# Text areas keep their value verbatim (an empty one still counts: it clears the field).
VERBATIM: Final = frozenset({"cmdline", "embedded-config", "overlay-options"})


@dataclass(frozen=True)
class WizardState:
    """Committed fields, remembered choices, and the live extension search text."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    selected: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    search: str = ""

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> WizardState:
        """From a form body or query string; unknown names (buttons, `lang`, …) are ignored."""
        values: dict[str, list[str]] = {}
        selected: dict[str, list[str]] = {}
        search = ""
        for name, value in pairs:
            if name == "search":
                search = value.strip()
                continue
            target = values
            if name.startswith(SELECTED_PREFIX):
                name, target = name.removeprefix(SELECTED_PREFIX), selected
            if name not in FIELDS:
                continue
            value = value.replace("\r\n", "\n") if name in VERBATIM else value.strip()
            if not value and name not in VERBATIM:
                continue
            if name in MULTI_VALUED:
                target.setdefault(name, []).append(value)
            else:
                target[name] = [value]  # the last one wins, as with a plain form
        committed = {k: tuple(v) for k, v in values.items()}
        remembered = {k: tuple(v) for k, v in selected.items() if k not in committed}
        return cls(MappingProxyType(committed), MappingProxyType(remembered), search)

    def get(self, name: str) -> str:
        """A single-valued committed field, "" when absent."""
        found = self.values.get(name)
        return found[0] if found else ""

    def remembered(self, name: str) -> str:
        """The committed value, else the remembered one, else ""."""
        found = self.values.get(name) or self.selected.get(name)
        return found[0] if found else ""

    def has(self, name: str) -> bool:
        return name in self.values

    @property
    def extensions(self) -> tuple[str, ...]:
        """Committed extensions, sorted, without the "none" marker."""
        return tuple(sorted({e for e in self.values.get("extensions", ()) if e != NO_EXTENSIONS}))

    @property
    def remembered_extensions(self) -> tuple[str, ...]:
        chosen = self.values.get("extensions") or self.selected.get("extensions") or ()
        return tuple(sorted({e for e in chosen if e != NO_EXTENSIONS}))

    def with_values(self, **updates: str | tuple[str, ...] | None) -> WizardState:
        """Commit (or, with None, drop) fields; names use `_` for `-`."""
        values = dict(self.values)
        selected = dict(self.selected)
        for key, value in updates.items():
            name = key.replace("_", "-")
            selected.pop(name, None)
            if value is None:
                values.pop(name, None)
            else:
                values[name] = (value,) if isinstance(value, str) else value
        return replace(self, values=MappingProxyType(values), selected=MappingProxyType(selected))

    def uncommit(self, steps: Iterable[Step]) -> WizardState:
        """Turn the fields of these steps back into remembered choices (stepping back over them)."""
        values = dict(self.values)
        selected = dict(self.selected)
        for step in steps:
            if step is Step.ARCH and "arch" in values and "secureboot" not in values:
                selected.pop("secureboot", None)  # an unchecked box sends nothing: remember "off"
            for name in STEP_FIELDS[step]:
                if name in values:
                    selected[name] = values.pop(name)
        return replace(self, values=MappingProxyType(values), selected=MappingProxyType(selected))

    def pairs(self, *, exclude: Iterable[str] = ()) -> list[tuple[str, str]]:
        """Every field as (name, value) for hidden inputs and URLs; `exclude` leaves out committed names
        (the fields that the current step's controls submit themselves)."""
        skip = set(exclude)
        out: list[tuple[str, str]] = []
        for name in FIELDS:
            if name in self.values and name not in skip:
                out += [(name, v) for v in self.values[name] if v or name not in VERBATIM]
        for name in FIELDS:
            if name in self.selected and name not in self.values and name not in skip:
                out += [(SELECTED_PREFIX + name, v) for v in self.selected[name] if v]
        return out

    def url(self) -> str:
        """`/?<fields>` for `Hx-Push-Url` (factory spec §12), `/` when there is nothing to keep."""
        query = urlencode(self.pairs())
        return f"/?{query}" if query else "/"

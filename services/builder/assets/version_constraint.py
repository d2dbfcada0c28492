"""Extension compatibility constraints (imager spec §1.3, Talos `validateConstraints`, blang/semver v4 ranges).

Grammar, as blang/semver `ParseRange` reads it: split on spaces (but a space right after `>`, `<` or
`=` joins the operator to its version), `||` separates OR groups, the parts of a group are ANDed;
operators `=` `==` (or none), `!=` `!`, `>`, `>=`, `<`, `<=`; `1.2.x` / `1.x` wildcards expand to
bounds. Before parsing, every `v` immediately followed by a digit is removed (Talos `trim`). The Talos
version is parsed tolerantly and only its major.minor.patch is compared, so pre-releases count as the
release.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import total_ordering

from services.shared.errors import InvalidArgument

_NUM = re.compile(r"0|[1-9][0-9]*")
_IDENT = re.compile(r"[0-9A-Za-z-]+")


@total_ordering
@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}" + (f"-{'.'.join(self.pre)}" if self.pre else "")

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        if (self.major, self.minor, self.patch) != (other.major, other.minor, other.patch):
            return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)
        if not self.pre or not other.pre:
            return bool(self.pre) and not other.pre  # a pre-release sorts before its release
        for a, b in zip(self.pre, other.pre, strict=False):
            if a != b:
                if a.isdigit() and b.isdigit():
                    return int(a) < int(b)
                if a.isdigit() or b.isdigit():
                    return a.isdigit()  # numeric identifiers sort before alphanumeric ones
                return a < b
        return len(self.pre) < len(other.pre)


def parse_version(text: str) -> SemVer:
    """blang/semver `Parse` (strict): `MAJOR.MINOR.PATCH[-pre][+build]`, no leading zeros."""
    core, _, _build = text.partition("+")
    core, dash, pre = core.partition("-")
    parts = core.split(".")
    if len(parts) != 3 or not all(_NUM.fullmatch(p) for p in parts):
        raise ValueError(f"invalid version {text!r}")
    idents = tuple(pre.split(".")) if dash else ()
    for ident in idents:
        if not _IDENT.fullmatch(ident) or (ident.isdigit() and not _NUM.fullmatch(ident)):
            raise ValueError(f"invalid pre-release {pre!r}")
    return SemVer(int(parts[0]), int(parts[1]), int(parts[2]), idents)


def parse_tolerant(text: str) -> SemVer:
    """blang/semver `ParseTolerant`: trims spaces and a `v`, drops leading zeros, fills `1.2` to `1.2.0`."""
    parts = [_drop_leading_zeros(p) for p in text.strip().removeprefix("v").split(".", 2)]
    if len(parts) < 3:
        if any(c in parts[-1] for c in "+-"):
            raise ValueError("short version cannot contain pre-release/build metadata")
        parts += ["0"] * (3 - len(parts))
    return parse_version(".".join(parts))


def _drop_leading_zeros(part: str) -> str:
    if len(part) <= 1:
        return part
    part = part.lstrip("0")
    return part if part[:1].isdigit() else "0" + part


def trim_v(constraint: str) -> str:
    """Talos `trim`: drop every `v` followed by a digit (a byte loop that does not re-check the shifted byte)."""
    chars, i = list(constraint), 0
    while i < len(chars):
        if chars[i] == "v" and i + 1 < len(chars) and chars[i + 1].isdigit():
            del chars[i]
        i += 1
    return "".join(chars)


def _split_and_trim(text: str) -> list[str]:
    # blang `splitAndTrim`, including its quirk of dropping a one-character part before a space.
    result, last, last_char = [], 0, ""
    for i, ch in enumerate(text):
        if ch == " " and last_char not in (">", "<", "="):
            if last < i - 1:
                result.append(text[last:i])
            last = i + 1
        elif ch != " ":
            last_char = ch
    if last < len(text) - 1:
        result.append(text[last:])
    return [part.replace(" ", "") for part in result]


def _split_op(part: str) -> tuple[str, str]:
    match = re.search(r"[0-9]", part)
    if match is None:
        raise ValueError(f'Could not get version from string: "{part}"')
    return part[: match.start()].strip(), part[match.start() :]


def _expand_wildcard(part: str) -> list[str]:
    """blang `expandWildcardVersion` for one part: `>= 1.2.x` → `>=1.2.0`, `1.x` → `>=1.0.0 <2.0.0`, …"""
    op, ver = _split_op(part)
    if ".x" not in part:
        return [part]
    pieces = ver.split(".")
    kind = len(pieces) if pieces[-1] == "x" else 0  # 2 = minor wildcard, 3 = patch wildcard
    flat = ver.replace(".x.x", ".x", 1).replace(".x", ".0", 1)
    if len(flat.split(".")) == 2:
        flat += ".0"
    head: list[str] = []
    bump = True
    if op == ">":
        result_op = ">="
    elif op == ">=":
        result_op, bump = ">=", False
    elif op == "<":
        result_op, bump = "<", False
    elif op == "<=":
        result_op = "<"
    elif op in ("", "=", "=="):
        head, result_op = [">=" + flat], "<"
    elif op in ("!=", "!"):
        head, result_op = ["<" + flat], ">="
    else:  # not an operator: blang keeps the flat version and the comparator fails later
        result_op, bump = op, False
    numbers = flat.split(".")
    if not bump:
        bumped = flat
    elif kind == 3:
        bumped = ".".join([numbers[0], str(int(numbers[1]) + 1), *numbers[2:]])
    elif kind == 2:
        bumped = ".".join([str(int(numbers[0]) + 1), *numbers[1:]])
    else:
        bumped = ""  # blang leaves the version empty here, which then fails to parse
    return [*head, result_op + bumped]


_COMPARATORS: dict[str, Callable[[SemVer, SemVer], bool]] = {
    "": lambda a, b: a == b, "=": lambda a, b: a == b, "==": lambda a, b: a == b,
    "!": lambda a, b: a != b, "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}  # fmt: skip


def parse_range(text: str) -> Callable[[SemVer], bool]:
    """blang/semver `ParseRange`: OR of ANDs."""
    parts = _split_and_trim(text)
    if parts and parts[0] == "||":
        raise ValueError("First element in range is '||'")
    groups: list[list[str]] = [[]]
    for part in parts:
        if part == "||":
            groups.append([])
        else:
            groups[-1].append(part)
    if not groups[-1]:
        raise ValueError("Last element in range is '||'")
    checks: list[list[tuple[Callable[[SemVer, SemVer], bool], SemVer]]] = []
    for group in groups:
        ands = []
        for part in (p for raw in group for p in _expand_wildcard(raw)):
            op, ver = _split_op(part)
            if op not in _COMPARATORS:
                raise ValueError(f'Could not parse Range "{part}": Could not parse comparator "{op}" in "{part}"')
            try:
                ands.append((_COMPARATORS[op], parse_version(ver)))
            except ValueError as exc:
                detail = f'Could not parse version "{ver}" in "{part}": {exc}'
                raise ValueError(f'Could not parse Range "{part}": {detail}') from None
        checks.append(ands)
    return lambda v: any(all(cmp(v, bound) for cmp, bound in ands) for ands in checks)


def check_constraint(constraint: str, talos_version: str) -> None:
    """§1.3: empty means compatible; failure → `version constraint <c> can't be satisfied with Talos version <v>`."""
    if not constraint:
        return
    try:
        version = parse_tolerant(talos_version)
    except ValueError as exc:
        raise InvalidArgument(f"invalid Talos version {talos_version!r}: {exc}") from None
    core = SemVer(version.major, version.minor, version.patch)
    try:
        satisfied = parse_range(trim_v(constraint))
    except ValueError as exc:
        raise InvalidArgument(f"error parsing Talos version constraint: {exc}") from None
    if not satisfied(core):
        raise InvalidArgument(f"version constraint {constraint} can't be satisfied with Talos version {core}")

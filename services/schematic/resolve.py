"""go-yaml v4 implicit tag resolution of plain scalars (`internal/libyaml/resolver.go` `resolve`).

Used twice: when decoding (which Go type a plain scalar becomes) and when encoding (a string that would
resolve to anything but `!!str` must be quoted). It follows Go's `strconv` semantics rather than
Python's, e.g. `012` is octal 10, `0x_1` is 1, `08` is a float and `1e400` (out of range) is a string.
"""

from __future__ import annotations

import re

from services.schematic.model import GoTime

STR = "!!str"
INT = "!!int"
FLOAT = "!!float"
BOOL = "!!bool"
NULL = "!!null"
TIMESTAMP = "!!timestamp"
MERGE = "!!merge"
BINARY = "!!binary"
SEQ = "!!seq"
MAP = "!!map"

_LONG_PREFIX = "tag:yaml.org,2002:"
_RESOLVABLE = frozenset({"", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP})
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1

_EXACT: dict[str, tuple[str, object]] = {}
for _tag, _value, _words in (
    (BOOL, True, ("true", "True", "TRUE")),
    (BOOL, False, ("false", "False", "FALSE")),
    (NULL, None, ("", "~", "null", "Null", "NULL")),
    (FLOAT, float("nan"), (".nan", ".NaN", ".NAN")),
    (FLOAT, float("inf"), (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
    (FLOAT, float("-inf"), ("-.inf", "-.Inf", "-.INF")),
    (FLOAT, -0.0, ("-0", "-0.0")),
    (MERGE, "<<", ("<<",)),
):
    for _word in _words:
        _EXACT[_word] = (_tag, _value)

_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OLD_BOOLS = frozenset(
    {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF"}
)


class ResolveError(ValueError):
    """An explicit tag does not fit its value (Go `failf`, a fatal decode error)."""


def short_tag(tag: str) -> str:
    return "!!" + tag[len(_LONG_PREFIX) :] if tag.startswith(_LONG_PREFIX) else tag


def _hint(text: str) -> str:
    if not text:
        return "N"
    first = text[0]
    if first in "+-":
        return "S"
    if "0" <= first <= "9":
        return "D"
    if first in "yYnNtTfFoO~<":
        return "M"
    return "." if first == "." else ""


def _go_parse_int(text: str, *, signed: bool) -> int | None:
    """`strconv.ParseInt(text, 0, 64)` (signed) or `strconv.ParseUint(text, 0, 64)`."""
    sign = 1
    if text[:1] in ("+", "-"):
        if not signed:
            return None
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    base, digits = 10, text
    if len(text) >= 2 and text[0] == "0" and text[1] in "xXoObB":
        base, digits = {"x": 16, "o": 8, "b": 2}[text[1].lower()], text[2:]
    elif len(text) >= 2 and text[0] == "0":
        base, digits = 8, text[1:]
    allowed = "0123456789abcdefABCDEF"[: base if base <= 10 else 10 + 2 * (base - 10)]
    if not digits or any(ch not in allowed for ch in digits):
        return None
    value = sign * int(digits, base)
    if signed:
        return value if _INT64_MIN <= value <= _INT64_MAX else None
    return value if value <= _UINT64_MAX else None


def _go_parse_float(text: str) -> float | None:
    """`strconv.ParseFloat` for the decimal syntax the callers pre-check; out of range is an error."""
    value = float(text)
    return None if value in (float("inf"), float("-inf")) else value


def resolve(tag: str, text: str) -> tuple[str, object]:
    """Resolve `text` under `tag` ("" = plain, untagged) to (tag, Python value) as Go does.

    Raises ResolveError when an explicit resolvable tag contradicts the value (`!!int foo`).
    """
    tag = short_tag(tag)
    if tag not in _RESOLVABLE:
        return tag, text
    if tag == STR:
        return STR, text
    rtag, value = _resolve_plain(text, allow_timestamp=tag in ("", TIMESTAMP))
    if tag in ("", rtag):
        return rtag, value
    if tag == FLOAT and rtag == INT:
        return FLOAT, float(value)  # type: ignore[arg-type]
    raise ResolveError(f"cannot construct {rtag} `{text}` as a {tag}")


def _resolve_plain(text: str, *, allow_timestamp: bool) -> tuple[str, object]:
    hint = _hint(text)
    if not hint:
        return STR, text
    if text in _EXACT:
        return _EXACT[text]
    if hint == "." and _DOT_FLOAT.fullmatch(text):
        number = _go_parse_float(text)
        if number is not None:
            return FLOAT, number
    if hint in ("D", "S"):
        if allow_timestamp:
            stamp = parse_timestamp(text)
            if stamp is not None:
                return TIMESTAMP, stamp
        plain = text.replace("_", "")
        integer = _go_parse_int(plain, signed=True)
        if integer is None:
            integer = _go_parse_int(plain, signed=False)
        if integer is not None:
            return INT, integer
        if _YAML_FLOAT.fullmatch(plain):
            number = _go_parse_float(plain)
            if number is not None:
                return FLOAT, number
    return STR, text


def needs_quotes(text: str) -> bool:
    """True if a Go string must be double-quoted so it reads back as a string (`stringv`)."""
    if _resolve_plain(text, allow_timestamp=True)[0] != STR:
        return True
    return text in _OLD_BOOLS or text == "<<" or _is_base60_float(text)


def _is_base60_float(text: str) -> bool:
    # YAML 1.1 sexagesimal floats (`1:20`); Go quotes them for the benefit of YAML 1.1 readers.
    if not text or not (text[0] in "+-" or "0" <= text[0] <= "9") or ":" not in text:
        return False
    return _BASE60_FLOAT.fullmatch(text) is not None


# --- timestamps: Go `time.Parse` with the four layouts go-yaml allows ------------------------------

_LAYOUTS = (
    ("T", True),  # 2006-1-2T15:4:5.999999999Z07:00
    ("t", True),  # 2006-1-2t15:4:5.999999999Z07:00
    (" ", False),  # 2006-1-2 15:4:5.999999999
    ("", False),  # 2006-1-2
)


class _Cursor:
    def __init__(self, text: str) -> None:
        self.text = text

    def number(self) -> int | None:
        """Go `getnum(value, false)`: one or two ASCII digits."""
        text = self.text
        if not text or not "0" <= text[0] <= "9":
            return None
        width = 2 if len(text) > 1 and "0" <= text[1] <= "9" else 1
        self.text = text[width:]
        return int(text[:width])

    def literal(self, char: str) -> bool:
        if char == " ":
            # Go `skip`: a layout space matches any run of spaces (or nothing at the end).
            if self.text and self.text[0] != " ":
                return False
            self.text = self.text.lstrip(" ")
            return True
        if self.text[:1] != char:
            return False
        self.text = self.text[1:]
        return True


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def parse_timestamp(text: str) -> GoTime | None:
    # Quick check as in go-yaml: every accepted layout starts with four digits and a dash.
    if len(text) < 5 or not text[:4].isascii() or not text[:4].isdigit() or text[4] != "-":
        return None
    for separator, zoned in _LAYOUTS:
        stamp = _parse_layout(text, separator, zoned)
        if stamp is not None:
            return stamp
    return None


def _parse_layout(text: str, separator: str, zoned: bool) -> GoTime | None:
    cur = _Cursor(text[4:])
    if not cur.literal("-"):
        return None
    month = cur.number()
    if month is None or not 1 <= month <= 12 or not cur.literal("-"):
        return None
    day = cur.number()
    if day is None:
        return None
    clock: tuple[int, int, int, int, int] | None = (0, 0, 0, 0, 0)
    if separator:
        clock = _clock(cur, separator, zoned)
    year = int(text[:4])
    if clock is None or cur.text or not 1 <= day <= _days_in(month, year):
        return None
    return GoTime(year, month, day, *clock)


def _clock(cur: _Cursor, separator: str, zoned: bool) -> tuple[int, int, int, int, int] | None:
    """`15:4:5.999999999` plus, for the zoned layouts, `Z07:00`; Go range-checks each field."""
    if not cur.literal(separator):
        return None
    hour = cur.number()
    if hour is None or hour >= 24 or not cur.literal(":"):
        return None
    minute = cur.number()
    if minute is None or minute >= 60 or not cur.literal(":"):
        return None
    second = cur.number()
    if second is None or second >= 60:
        return None
    nanos = _fraction(cur)
    offset: int | None = 0
    if zoned:
        offset = _zone(cur)
    return None if offset is None else (hour, minute, second, nanos, offset)


def _fraction(cur: _Cursor) -> int:
    """Go `stdFracSecond9`: optional `.` or `,` and any number of digits (nine are kept)."""
    text = cur.text
    if len(text) < 2 or text[0] not in ".," or not "0" <= text[1] <= "9":
        return 0
    end = 1
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    digits = text[1:end][:9]
    cur.text = text[end:]
    return int(digits.ljust(9, "0"))


def _zone(cur: _Cursor) -> int | None:
    """Go `stdISO8601ColonTZ`: `Z` or `±hh:mm` (hours up to 24, minutes up to 60, as Go allows)."""
    text = cur.text
    if text[:1] == "Z":
        cur.text = text[1:]
        return 0
    if len(text) < 6 or text[3] != ":" or text[0] not in "+-":
        return None
    hours, minutes = text[1:3], text[4:6]
    if not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
        return None
    if int(hours) > 24 or int(minutes) > 60:
        return None
    cur.text = text[6:]
    offset = int(hours) * 3600 + int(minutes) * 60
    return -offset if text[0] == "-" else offset

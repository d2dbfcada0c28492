"""Go runtime behaviour the decoder needs to imitate: numeric conversions and `%#v` quoting."""

from __future__ import annotations

import math

U64_MAX = (1 << 64) - 1


def _amd64_float_to_int64(value: float) -> int:
    # CVTTSD2SQ: truncation, with the "integer indefinite" value for NaN and out-of-range input.
    if math.isnan(value) or math.isinf(value):
        return -(1 << 63)
    truncated = int(value)
    return truncated if -(1 << 63) <= truncated < (1 << 63) else -(1 << 63)


def go_float_to_uint64(value: float) -> int:
    """Go's `uint64(f)` as compiled for amd64 (the spec leaves out-of-range conversions open)."""
    if value < 2.0**63:
        return _amd64_float_to_int64(value) & U64_MAX
    return (_amd64_float_to_int64(value - 2.0**63) & U64_MAX) ^ (1 << 63)


def go_quote(text: str) -> str:
    """Go `%#v` of a string (strconv.Quote): printable runes kept, the rest escaped."""
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)

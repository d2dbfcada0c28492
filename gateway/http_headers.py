"""HTTP header values for downloads: a safe `Content-Disposition` and single byte ranges (RFC 9110 §14)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from services.builder.enums import go_quote
from services.shared.errors import InvalidArgument

# RFC 5987 `attr-char` minus ALPHA / DIGIT, which `quote` always keeps.
_ATTR_CHAR_PUNCT: Final = "!#$&+-.^_`|~"


def content_disposition(filename: str) -> str:
    """`attachment; filename="…"`, safe for any input.

    The reference writes the `filename` query verbatim between quotes (§2.6 step 10), which lets a
    client inject `"`, `;` parameters or, with CR/LF, whole headers. Here:
      * control characters (C0, DEL, C1, so CR and LF), lone surrogates and an empty name are
        refused (400);
      * printable ASCII without `"` and `\\` is emitted exactly as the reference does;
      * anything else gets an ASCII fallback (`_` for `"`, `\\` and non-ASCII) plus the exact name as
        RFC 5987 `filename*=UTF-8''<percent-encoded>` (RFC 6266 §4.3).
    """
    if not filename:
        raise InvalidArgument("invalid filename: empty")
    if any(unicodedata.category(ch) == "Cc" for ch in filename):
        raise InvalidArgument(f"invalid filename {go_quote(filename)}: control characters are not allowed")
    if any(unicodedata.category(ch) == "Cs" for ch in filename):
        raise InvalidArgument(f"invalid filename {go_quote(filename)}: not valid UTF-8")
    if all(_plain(ch) for ch in filename):
        return f'attachment; filename="{filename}"'
    fallback = "".join(ch if _plain(ch) else "_" for ch in filename)
    encoded = quote(filename, safe=_ATTR_CHAR_PUNCT, encoding="utf-8", errors="strict")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _plain(ch: str) -> bool:
    return " " <= ch <= "~" and ch not in '"\\'


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    length: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.start + self.length - 1}/{size}"


class RangeNotSatisfiable(Exception):
    """416: the range lies outside the resource."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=` range → ByteRange; None means "send everything" (no header, or a form we ignore).

    Several ranges, other units and malformed values are ignored, as RFC 9110 allows; a well-formed
    range that does not overlap the resource raises RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        start = max(size - suffix, 0)
        return ByteRange(start, size - start)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1) - start + 1)

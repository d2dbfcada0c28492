"""Download headers: `Content-Type` by output path (factory spec §2.6.1) and `Content-Disposition`.

The Go service falls back to `mime.TypeByExtension`, which reads the host's `mime.types` (so `.tar`,
`.zst`, `.raw`, `.ova`, `.vhd` vary by machine, §18.4). We use the spec's recommendation: a fixed table,
`.tar` added, `.txt` kept as the reference's unit test expects, everything else
`application/octet-stream`. The type is that of the canonical `:path`, never of a `?filename=`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final
from urllib.parse import quote

from services.builder.enums import go_quote
from services.shared.errors import InvalidArgument

OCTET_STREAM: Final = "application/octet-stream"

MIME_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        ".efi": "application/efi",
        ".iso": "application/x-iso9660-image",
        ".xz": "application/x-xz",
        ".gz": "application/gzip",  # so `.tar.gz` is gzip too: only the last extension counts
        ".qcow2": "application/x-qemu-disk",
        ".tar": "application/x-tar",
        ".txt": "text/plain; charset=utf-8",
    }
)

# RFC 5987 `attr-char` minus ALPHA / DIGIT, which `quote` always keeps.
_ATTR_CHAR_PUNCT: Final = "!#$&+-.^_`|~"


def extension(path: str) -> str:
    """Go `filepath.Ext`: from the last `.` of the last path element, `""` when there is none."""
    element = path.rpartition("/")[2]
    dot = element.rfind(".")
    return element[dot:] if dot >= 0 else ""


def content_type(path: str) -> str:
    """MIME type of an output path (§2.6.1); extensions match case-sensitively, as in `mime.go`."""
    return MIME_TYPES.get(extension(path), OCTET_STREAM)


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

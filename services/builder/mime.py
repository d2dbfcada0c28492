"""`Content-Type` of an output path (factory spec §2.6.1); `Content-Disposition` is in gateway.http_headers.

The Go service falls back to `mime.TypeByExtension`, which reads the host's `mime.types` (so `.tar`,
`.zst`, `.raw`, `.ova`, `.vhd` vary by machine, §18.4). We use the spec's recommendation: a fixed table,
`.tar` added, `.txt` kept as the reference's unit test expects, everything else
`application/octet-stream`. The type is that of the canonical `:path`, never of a `?filename=`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

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


def extension(path: str) -> str:
    """Go `filepath.Ext`: from the last `.` of the last path element, `""` when there is none."""
    element = path.rpartition("/")[2]
    dot = element.rfind(".")
    return element[dot:] if dot >= 0 else ""


def content_type(path: str) -> str:
    """MIME type of an output path (§2.6.1); extensions match case-sensitively, as in `mime.go`."""
    return MIME_TYPES.get(extension(path), OCTET_STREAM)

"""JSON bodies byte-identical to Go's `json.NewEncoder(w).Encode(v)`.

Go escapes `<`, `>`, `&`, U+2028 and U+2029, keeps other non-ASCII as UTF-8, writes no spaces and ends
with a newline. Clients that compare bodies (or hash them) see the same bytes as from the Go factory.
"""

from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return (text + "\n").encode()

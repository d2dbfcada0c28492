"""Untrusted bytes → a small YAML node tree, the way go-yaml's parser/composer builds one.

We read events (libyaml through PyYAML's C binding when available, the same scanner go-yaml was ported
from) instead of `yaml.load`, so we keep line numbers, explicit tags and aliases, and can stop early:

* only the first document is read (Go `Decoder.Decode` decodes one document);
* nesting deeper than MAX_DEPTH is refused as soon as it is seen;
* aliases stay alias nodes (no expansion here); the constructor budgets their expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from services.schematic import resolve as r
from services.shared.errors import InvalidArgument, PayloadTooLarge

MAX_BODY_BYTES = 1 << 20
# Schematics nest four levels; overlay options a few more. go-yaml allows 10000, far too many for us.
MAX_DEPTH = 64

# libyaml (C) when PyYAML was built with it: faster on hostile input and closer to go-yaml's scanner.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(eq=False, slots=True)
class Node:
    kind: str  # "scalar" | "seq" | "map" | "alias"
    line: int  # 1-based, as go-yaml reports it
    tag: str  # short tag: the explicit one, else what go-yaml's parser assigns (resolved for plain)
    value: str = ""  # scalar text, or the anchor name of an alias
    children: list[Node] = field(default_factory=list)  # sequence items, or key, value, key, value...
    target: Node | None = None  # what an alias points to

    @property
    def resolved_tag(self) -> str:
        """Go `Node.ShortTag()`: an alias reports its target's tag."""
        return self.target.tag if self.kind == "alias" and self.target is not None else self.tag


def compose_first_document(body: bytes) -> Node | None:
    """Parse the first YAML document of `body`; None when the stream holds no document (Go `io.EOF`)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"schematic is {len(body)} bytes, more than the {MAX_BODY_BYTES} allowed")
    loader = _LOADER(body)
    try:
        return _Composer(loader).document()
    except yaml.MarkedYAMLError as exc:
        # go-yaml v3 wrote syntax errors as `yaml: line N: <libyaml problem>`; the v4 release in use
        # may word them differently (only the unknown-field text is pinned by Go's tests).
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context
        if problem == "exceeded maximum nesting depth":  # libyaml's own flow limit (1000)
            problem = f"exceeded max depth of {MAX_DEPTH}"
        raise InvalidArgument(f"yaml: {where}{problem}") from None
    except yaml.reader.ReaderError as exc:
        raise InvalidArgument(f"yaml: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"yaml: {exc}") from None
    finally:
        loader.dispose()


class _Composer:
    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._anchors: dict[str, Node] = {}
        self._stack: list[Node] = []
        self._root: Node | None = None

    def document(self) -> Node | None:
        while True:
            event = self._loader.get_event()
            if isinstance(event, yaml.StreamEndEvent):
                return None
            if isinstance(event, yaml.DocumentStartEvent):
                break
        while True:
            event = self._loader.get_event()
            if isinstance(event, yaml.DocumentEndEvent):
                return self._root
            self._feed(event)

    def _feed(self, event: Any) -> None:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.ScalarEvent):
            self._attach(self._anchor(event.anchor, _scalar(event, line)))
        elif isinstance(event, yaml.AliasEvent):
            name = str(event.anchor)
            target = self._anchors.get(name)
            if target is None:
                raise InvalidArgument(f"yaml: unknown anchor '{name}' referenced")
            self._attach(Node("alias", line, "", name, target=target))
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(self._stack) >= MAX_DEPTH:
                raise InvalidArgument(f"yaml: line {line}: exceeded max depth of {MAX_DEPTH}")
            kind, default = ("seq", r.SEQ) if isinstance(event, yaml.SequenceStartEvent) else ("map", r.MAP)
            tag = r.short_tag(event.tag) if event.tag not in (None, "!") else default
            # Go registers the anchor before the children, so `&a [*a]` refers to itself; the
            # constructor reports that as "anchor 'a' value contains itself".
            node = self._anchor(event.anchor, Node(kind, line, tag))
            self._attach(node)
            self._stack.append(node)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            self._stack.pop()

    def _anchor(self, anchor: str | None, node: Node) -> Node:
        if anchor is not None:
            self._anchors[anchor] = node  # a later anchor of the same name wins, as in Go
        return node

    def _attach(self, node: Node) -> None:
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self._root = node


def _scalar(event: Any, line: int) -> Node:
    value: str = event.value
    if event.tag not in (None, "!"):
        tag = r.short_tag(event.tag)
    elif event.style:  # quoted, literal or folded: always a string
        tag = r.STR
    elif value == "<<":
        tag = r.MERGE
    else:
        tag = r.resolve("", value)[0]
    return Node("scalar", line, tag, value)

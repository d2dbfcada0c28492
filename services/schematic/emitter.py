"""A block-style YAML emitter that writes byte-for-byte what go-yaml v4's emitter writes.

It is a port of the parts of libyaml's emitter (as modified in go-yaml, `internal/libyaml/emitter.go`)
that `yaml.Marshal` reaches for plain Go data: block mappings and sequences, `{}`/`[]` for empty
ones, `? key` for keys that cannot be simple, and the four scalar styles. Settings are those of
`yaml.Marshal`: indent 4, sequences indented under their key, unicode output, no line wrapping.

The tree it writes is already "represented": the caller decides the requested style of each scalar
(go-yaml `stringv`); the emitter may still downgrade it (plain → single → double quotes, literal →
double quotes) exactly as `selectScalarStyle` does.

Ported from the yaml/go-yaml main branch; the v4.0.0-rc.4 the Go service pins may differ for literal
blocks that start with a line break (see `write_literal`). We assume unicode output is on (as in v3),
and the default single-quote preference of `requiredQuoteStyle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

BEST_INDENT = 4
_SIMPLE_KEY_MAX = 128  # bytes; longer keys use the explicit `? key` form
_BREAKS = frozenset("\r\n\x85\u2028\u2029")
_FIRST_INDICATORS = frozenset("#,[]{}&*!|>'\"%@`")
_ESCAPES = {
    0x00: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r",
    0x1B: "e", 0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_", 0x2028: "L", 0x2029: "P",
}  # fmt: skip


class Style(Enum):
    PLAIN = "plain"
    SINGLE = "single"
    DOUBLE = "double"
    LITERAL = "literal"


@dataclass(frozen=True)
class Scalar:
    text: str
    style: Style = Style.PLAIN  # the style the representer asks for


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Map:
    pairs: tuple[tuple[Scalar, Node], ...]


Node = Scalar | Seq | Map


def emit(root: Node) -> str:
    """One implicit document, no `---`, ending with a newline."""
    emitter = _Emitter()
    emitter.node(root, in_sequence=False, simple_key=False)
    emitter.write_indent()  # document end
    return "".join(emitter.out)


def _printable(ch: str) -> bool:
    # libyaml's is_printable tests UTF-8 bytes; this is the same set of code points. Characters
    # outside the BMP are *not* printable for it, so they are written as \U escapes.
    cp = ord(ch)
    return cp == 0x0A or 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xD7FF or (0xE000 <= cp <= 0xFFFD and cp != 0xFEFF)


def _blank(text: str, i: int) -> bool:
    return i < len(text) and text[i] in " \t"


@dataclass(frozen=True)
class _Analysis:
    multiline: bool
    block_plain_allowed: bool
    single_quoted_allowed: bool
    block_allowed: bool


def _analyze(text: str) -> _Analysis:
    """libyaml `analyze_scalar`, block context only (we never write non-empty flow collections)."""
    if not text:
        return _Analysis(False, True, True, False)
    indicators = text.startswith(("---", "..."))
    breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_ws = True
    last = len(text) - 1
    for i, ch in enumerate(text):
        followed_by_ws = i == last or _blank(text, i + 1)
        if i == 0:
            if ch in _FIRST_INDICATORS or (ch in "?:-" and followed_by_ws):
                indicators = True
        elif (ch == ":" and followed_by_ws) or (ch == "#" and preceded_by_ws):
            indicators = True
        if ch == "\t":
            tabs = True
        elif not _printable(ch):
            special = True
        if ch == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == last
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == last
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = ch in " \t\0" or ch in _BREAKS
    plain = not (leading_space or leading_break or trailing_space or trailing_break)
    plain = plain and not (break_space or space_break or tabs or special or breaks or indicators)
    single = not (break_space or space_break or tabs or special)
    block = not (trailing_space or space_break or special)
    return _Analysis(breaks, plain, single, block)


def _select_style(scalar: Scalar, analysis: _Analysis, simple_key: bool) -> Style:
    """libyaml `select_scalar_style` for an untagged scalar outside flow collections."""
    style = scalar.style
    if simple_key and analysis.multiline:
        style = Style.DOUBLE
    if style is Style.PLAIN and (not analysis.block_plain_allowed or (simple_key and not scalar.text)):
        style = Style.SINGLE
    if style is Style.SINGLE and not analysis.single_quoted_allowed:
        style = Style.DOUBLE
    if style is Style.LITERAL and (not analysis.block_allowed or simple_key):
        style = Style.DOUBLE
    return style


class _Emitter:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True  # was the last character whitespace?
        self.indention = True  # was the last character part of the indentation?
        self.indent = -1
        self.indents: list[int] = []

    # --- low-level writes (libyaml put / write / write_indent / write_indicator) ----------------

    def put(self, ch: str) -> None:
        self.out.append(ch)
        self.column += 1

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        self.indention = True

    def write_break(self, ch: str) -> None:
        if ch == "\n":
            self.put_break()
        else:
            self.out.append(ch)
            self.column = 0
            self.indention = True

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self.put_break()
        while self.column < indent:
            self.put(" ")
        self.whitespace = True

    def write_indicator(self, text: str, need_ws: bool, is_ws: bool, is_indention: bool) -> None:
        if need_ws and not self.whitespace:
            self.put(" ")
        for ch in text:
            self.put(ch)
        self.whitespace = is_ws
        self.indention = self.indention and is_indention

    def increase_indent(self, *, flow: bool, in_sequence: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = BEST_INDENT if flow else 0
        elif in_sequence:
            self.indent += 2  # go-yaml: the first level inside a sequence item only skips "- "
        else:
            self.indent = BEST_INDENT * ((self.indent + BEST_INDENT) // BEST_INDENT)

    # --- nodes ---------------------------------------------------------------------------------

    def node(self, node: Node, *, in_sequence: bool, simple_key: bool) -> None:
        if isinstance(node, Scalar):
            self.scalar(node, in_sequence=in_sequence, simple_key=simple_key)
        elif isinstance(node, Seq):
            if node.items:
                self.block_sequence(node, in_sequence=in_sequence)
            else:
                self.write_indicator("[", True, True, False)
                self.write_indicator("]", False, False, False)
        elif node.pairs:
            self.block_mapping(node, in_sequence=in_sequence)
        else:
            self.write_indicator("{", True, True, False)
            self.write_indicator("}", False, False, False)

    def block_sequence(self, seq: Seq, *, in_sequence: bool) -> None:
        self.increase_indent(flow=False, in_sequence=in_sequence)
        for item in seq.items:
            self.write_indent()
            self.write_indicator("-", True, False, True)
            self.node(item, in_sequence=True, simple_key=False)
        self.indent = self.indents.pop()

    def block_mapping(self, mapping: Map, *, in_sequence: bool) -> None:
        self.increase_indent(flow=False, in_sequence=in_sequence)
        for key, value in mapping.pairs:
            self.write_indent()
            if not _analyze(key.text).multiline and len(key.text.encode()) <= _SIMPLE_KEY_MAX:
                self.scalar(key, in_sequence=False, simple_key=True)
                self.write_indicator(":", False, False, False)
            else:
                self.write_indicator("?", True, False, True)
                self.scalar(key, in_sequence=False, simple_key=False)
                self.write_indent()
                self.write_indicator(":", True, False, True)
            self.node(value, in_sequence=False, simple_key=False)
        self.indent = self.indents.pop()

    def scalar(self, scalar: Scalar, *, in_sequence: bool, simple_key: bool) -> None:
        style = _select_style(scalar, _analyze(scalar.text), simple_key)
        self.increase_indent(flow=True, in_sequence=in_sequence)
        if style is Style.PLAIN:
            self.write_plain(scalar.text)
        elif style is Style.SINGLE:
            self.write_single_quoted(scalar.text)
        elif style is Style.DOUBLE:
            self.write_double_quoted(scalar.text)
        else:
            self.write_literal(scalar.text)
        self.indent = self.indents.pop()

    # --- scalar writers (no line wrapping: go-yaml's Marshal sets an unlimited width) -------------

    def write_plain(self, text: str) -> None:
        if text and not self.whitespace:
            self.put(" ")
        self._write_folded_breaks(text, quote=False)
        if text:
            self.whitespace = False
        self.indention = False

    def write_single_quoted(self, text: str) -> None:
        self.write_indicator("'", True, False, False)
        self._write_folded_breaks(text, quote=True)
        self.write_indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def _write_folded_breaks(self, text: str, *, quote: bool) -> None:
        # Plain and single-quoted scalars write a line break as an empty line plus the break, so
        # that it survives line folding when read back.
        breaks = False
        for ch in text:
            if ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self.write_break(ch)
                breaks = True
            elif ch == " ":
                self.put(ch)
            else:
                if breaks:
                    self.write_indent()
                if quote and ch == "'":
                    self.put("'")
                self.put(ch)
                self.indention = False
                breaks = False

    def write_double_quoted(self, text: str) -> None:
        self.write_indicator('"', True, False, False)
        # libyaml checks for a byte order mark at the *start* of the value at every position, so
        # a value starting with U+FEFF is escaped in full.
        bom = text.startswith("\ufeff")
        for ch in text:
            cp = ord(ch)
            if bom or not _printable(ch) or ch in _BREAKS or ch in '"\\':
                self.put("\\")
                if cp in _ESCAPES:
                    self.put(_ESCAPES[cp])
                else:
                    prefix, width = ("x", 2) if cp <= 0xFF else ("u", 4) if cp <= 0xFFFF else ("U", 8)
                    for out in f"{prefix}{cp:0{width}X}":
                        self.put(out)
            else:
                self.put(ch)
        self.write_indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    def write_literal(self, text: str) -> None:
        self.write_indicator("|", True, False, False)
        if text.startswith(" "):
            # Only a leading space gets an indentation indicator in current go-yaml (issue #65);
            # older releases also added one for a leading line break.
            self.write_indicator(str(BEST_INDENT), False, False, False)
        chomp = _chomping(text)
        if chomp:
            self.write_indicator(chomp, False, False, False)
        # Current go-yaml breaks the line right after the header (go-yaml/yaml#755); releases
        # without that fix lost the first line break of a value starting with one.
        self.put_break()
        self.whitespace = True
        breaks = True
        for ch in text:
            if ch in _BREAKS:
                self.write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = False
                breaks = False


def _chomping(text: str) -> str:
    """`-` strips a missing final break, nothing keeps one, `+` keeps several (or a lone break)."""
    if not text or text[-1] not in _BREAKS:
        return "-"
    if len(text) == 1 or text[-2] in _BREAKS:
        return "+"
    return ""

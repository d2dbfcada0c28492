"""Extension `manifest.yaml` and the initramfs `extensions.yaml` (imager spec §1.3, §1.4, §4.6).

Reading follows go-yaml decoding into Talos' `extensions.Manifest` struct: unknown keys are ignored, a
null scalar leaves a field empty, any other scalar keeps its *source text* (`version: 1.10` stays
"1.10", never the float 1.1), and a sequence or mapping where a string belongs is an error. Writing
represents the same structs the way go-yaml's `Marshal` does and hands them to the project's
go-yaml-compatible emitter (`services.schematic.emitter`): 4-space indent, `extraInfo` omitted when
empty, multi-line strings as `|` literal blocks, `'>= 1.0.0'` single-quoted by the emitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.schematic import emitter as e
from services.schematic import resolve as r
from services.schematic.yamltree import Node, compose_first_document
from services.shared.errors import InvalidArgument

MANIFEST_VERSION = "v1alpha1"
_MAX_MANIFEST = 1 << 20


@dataclass(frozen=True)
class Metadata:
    """`extensions.Metadata`; `compatibility` is `compatibility.talos.version`."""

    name: str = ""
    version: str = ""
    author: str = ""
    description: str = ""
    compatibility: str = ""
    extra_info: str = ""


@dataclass(frozen=True)
class Manifest:
    version: str = ""
    metadata: Metadata = field(default_factory=Metadata)


@dataclass(frozen=True)
class Layer:
    """One `extensions.yaml` layer: the squashfs file name in the initramfs and its manifest metadata."""

    image: str
    metadata: Metadata


# --- reading -------------------------------------------------------------------------------------


def parse_manifest(body: bytes) -> Manifest:
    """Decode `manifest.yaml` (no validation beyond types; see `extensions.load_extension`)."""
    if len(body) > _MAX_MANIFEST:
        raise InvalidArgument(f"manifest.yaml is {len(body)} bytes, more than the {_MAX_MANIFEST} allowed")
    root = compose_first_document(body)
    if root is None:
        raise InvalidArgument("EOF")  # Go's Decoder.Decode on an empty stream
    top = _struct(root, "extensions.Manifest")
    meta = _struct(top.get("metadata"), "extensions.Metadata")
    compat = _struct(meta.get("compatibility"), "extensions.Compatibility")
    talos = _struct(compat.get("talos"), "extensions.Constraint")
    return Manifest(
        version=_string(top.get("version")),
        metadata=Metadata(
            name=_string(meta.get("name")),
            version=_string(meta.get("version")),
            author=_string(meta.get("author")),
            description=_string(meta.get("description")),
            compatibility=_string(talos.get("version")),
            extra_info=_string(meta.get("extraInfo")),
        ),
    )


def _deref(node: Node | None) -> Node | None:
    while node is not None and node.kind == "alias":
        node = node.target
    return node


def _unmarshal_error(node: Node, into: str) -> InvalidArgument:
    what = f"{node.tag} `{node.value}`" if node.kind == "scalar" else node.tag
    return InvalidArgument(f"yaml: unmarshal errors: line {node.line}: cannot unmarshal {what} into {into}")


def _struct(node: Node | None, into: str) -> dict[str, Node]:
    node = _deref(node)
    if node is None or (node.kind == "scalar" and node.tag == r.NULL):
        return {}  # absent or null: the zero struct
    if node.kind != "map":
        raise _unmarshal_error(node, into)
    fields: dict[str, Node] = {}
    pairs = node.children
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        key = _deref(key) or key
        if key.value in fields:
            raise InvalidArgument(f'yaml: mapping key "{key.value}" already defined')
        fields[key.value] = value
    return fields


def _string(node: Node | None) -> str:
    node = _deref(node)
    if node is None or (node.kind == "scalar" and node.tag == r.NULL):
        return ""
    if node.kind != "scalar":
        raise _unmarshal_error(node, "string")
    return node.value


# --- writing -------------------------------------------------------------------------------------


def _str(text: str) -> e.Scalar:
    """go-yaml `stringv` for a Go string, as `services.schematic.canonical` does for schematics."""
    if "\n" in text:
        # go-yaml `shouldUseLiteralStyle`; Go's unicode.IsSpace, unlike str.isspace, excludes 0x1C-0x1F.
        literal = len(text.encode()) >= 2 and not all(ch.isspace() and ch not in "\x1c\x1d\x1e\x1f" for ch in text)
        return e.Scalar(text, e.Style.LITERAL if literal else e.Style.DOUBLE)
    return e.Scalar(text, e.Style.DOUBLE if r.needs_quotes(text) else e.Style.PLAIN)


def _map(*pairs: tuple[str, e.Node]) -> e.Map:
    return e.Map(tuple((e.Scalar(key), value) for key, value in pairs))


def metadata_node(meta: Metadata) -> e.Map:
    pairs: list[tuple[str, e.Node]] = [
        ("name", _str(meta.name)),
        ("version", _str(meta.version)),
        ("author", _str(meta.author)),
        ("description", _str(meta.description)),
        ("compatibility", _map(("talos", _map(("version", _str(meta.compatibility)))))),
    ]
    if meta.extra_info:  # `yaml:"extraInfo,omitempty"`
        pairs.append(("extraInfo", _str(meta.extra_info)))
    return _map(*pairs)


def manifest_yaml(manifest: Manifest) -> bytes:
    return e.emit(_map(("version", _str(manifest.version)), ("metadata", metadata_node(manifest.metadata)))).encode()


def extensions_yaml(layers: Sequence[Layer]) -> bytes:
    """§4.6 `extensions.Config{Layers}`; an empty list is `layers: []`."""
    items = tuple(_map(("image", _str(layer.image)), ("metadata", metadata_node(layer.metadata))) for layer in layers)
    return e.emit(_map(("layers", e.Seq(items)))).encode()

"""`manifest.yaml` decoding and `extensions.yaml` encoding (imager spec §1.3, §4.6)."""

from __future__ import annotations

import pytest

from services.builder.assets.extension_manifest import (
    Layer,
    Manifest,
    Metadata,
    extensions_yaml,
    manifest_yaml,
    parse_manifest,
)
from services.shared.errors import InvalidArgument

GVISOR = Metadata(
    name="gvisor",
    version="20220117.0-v1.0.0",
    author="Andrew Rynhard",
    description="This system extension provides gVisor using containerd's runtime handler.\n",
    compatibility=">= v1.0.0",
)


def test_parse_keeps_scalar_text() -> None:
    manifest = parse_manifest(
        b"version: v1alpha1\n"
        b"metadata:\n"
        b"  name: gvisor\n"
        b"  version: 1.10\n"  # go-yaml keeps the text for a string field: never the float 1.1
        b"  author: ~\n"
        b"  unknown: [ignored]\n"
        b"  description: |\n"
        b"    multi\n"
        b"    line\n"
        b"  compatibility:\n"
        b"    talos:\n"
        b"      version: '>= v1.0.0'\n"
    )
    assert manifest == Manifest(
        "v1alpha1",
        Metadata(name="gvisor", version="1.10", author="", description="multi\nline\n", compatibility=">= v1.0.0"),
    )


def test_parse_alias_and_missing_sections() -> None:
    manifest = parse_manifest(b"version: &v v1alpha1\nmetadata:\n  name: *v\n")
    assert manifest == Manifest("v1alpha1", Metadata(name="v1alpha1"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b"- a\n", "yaml: unmarshal errors: line 1: cannot unmarshal !!seq into extensions.Manifest"),
        (b"version: [1]\n", "line 1: cannot unmarshal !!seq into string"),
        (b"metadata: foo\n", "cannot unmarshal !!str `foo` into extensions.Metadata"),
        (b"version: a\nversion: b\n", 'mapping key "version" already defined'),
        (b"version: [\n", "yaml: line 2"),
    ],
)
def test_parse_errors(body: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_manifest(body)
    assert message in err.value.message


def test_manifest_round_trip() -> None:
    manifest = Manifest("v1alpha1", GVISOR)
    assert parse_manifest(manifest_yaml(manifest)) == manifest


def test_extensions_yaml_bytes() -> None:
    modules = Metadata(
        name="modules.dep",
        version="6.18.1-talos",
        author="Talos Machinery",
        description="Combined modules.dep for all extensions",
    )
    assert extensions_yaml([Layer("0.sqsh", GVISOR), Layer("modules.dep.sqsh", modules)]) == (
        b"layers:\n"
        b"    - image: 0.sqsh\n"
        b"      metadata:\n"
        b"        name: gvisor\n"
        b"        version: 20220117.0-v1.0.0\n"
        b"        author: Andrew Rynhard\n"
        b"        description: |\n"
        b"            This system extension provides gVisor using containerd's runtime handler.\n"
        b"        compatibility:\n"
        b"            talos:\n"
        b"                version: '>= v1.0.0'\n"
        b"    - image: modules.dep.sqsh\n"
        b"      metadata:\n"
        b"        name: modules.dep\n"
        b"        version: 6.18.1-talos\n"
        b"        author: Talos Machinery\n"
        b"        description: Combined modules.dep for all extensions\n"
        b"        compatibility:\n"
        b"            talos:\n"
        b'                version: ""\n'
    )


def test_extensions_yaml_quoting_and_extra_info() -> None:
    meta = Metadata(name="true", version="1.0", author="a: b", description="x\ny", extra_info="k: v\n")
    assert extensions_yaml([Layer("2.sqsh", meta)]) == (
        b"layers:\n"
        b"    - image: 2.sqsh\n"
        b"      metadata:\n"
        b'        name: "true"\n'
        b'        version: "1.0"\n'
        b"        author: 'a: b'\n"
        b"        description: |-\n"
        b"            x\n"
        b"            y\n"
        b"        compatibility:\n"
        b"            talos:\n"
        b'                version: ""\n'
        b"        extraInfo: |\n"
        b"            k: v\n"
    )


def test_empty_layers() -> None:
    assert extensions_yaml([]) == b"layers: []\n"

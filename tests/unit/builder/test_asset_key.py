"""Asset keys (factory spec §5, STYLE §8): stable for equal inputs, different for any change."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields, is_dataclass, replace
from enum import Enum
from typing import Any, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.builder import profile as profile_module
from services.builder.asset_key import BUILDER_FORMAT_VERSION, KEY_SALTS, asset_key, canonical_profile, key_document
from services.builder.enums import Arch, Bootloader, Compression, EnrollKeys, ImageFormat, OutputKind, Platform
from services.builder.profile import (
    BaseInstaller,
    Customization,
    ExtensionInput,
    ImageOptions,
    Input,
    ISOOptions,
    Output,
    OverlayInput,
    Profile,
    SchematicExtension,
    SecureBootInput,
    parse_profile_path,
)
from services.catalog.versions import Version
from services.schematic.model import MetaValue, OptionMap

text = st.text(max_size=12)
digests = st.text(alphabet="0123456789abcdef", min_size=1, max_size=8).map(lambda h: f"sha256:{h}")
versions = st.builds(
    Version,
    st.just(1),
    st.integers(0, 16),
    st.integers(0, 4),
    st.sampled_from([(), ("alpha", 0), ("beta", 2), ("rc", 1)]),
)
options = st.dictionaries(
    st.one_of(text, st.integers(0, 3)), st.one_of(text, st.integers(), st.booleans()), max_size=3
).map(OptionMap)
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Version: versions,
    OptionMap: options,
    MetaValue: st.builds(MetaValue, key=st.integers(0, 255), value=text),
    ImageOptions: st.builds(
        ImageOptions,
        disk_size=st.integers(0, 2**40),
        disk_format=st.none() | st.sampled_from(ImageFormat),
        disk_format_options=text,
        disk_sector_size=st.sampled_from([0, 512, 4096]),
        bootloader=st.sampled_from(Bootloader),
        sd_boot_enroll_keys=st.sampled_from(EnrollKeys),
    ),
    ISOOptions: st.builds(ISOOptions, st.sampled_from(EnrollKeys), st.sampled_from(Bootloader)),
    BaseInstaller: st.builds(BaseInstaller, text, text),
    ExtensionInput: st.builds(ExtensionInput, text, text, digests),
    SchematicExtension: st.builds(SchematicExtension, text, st.booleans(), text),
    SecureBootInput: st.builds(SecureBootInput, st.booleans()),
    OverlayInput: st.builds(OverlayInput, text, text, text, digests, options),
}
STRATEGIES[Customization] = st.builds(
    Customization,
    st.lists(text, max_size=3).map(tuple),
    st.lists(STRATEGIES[MetaValue], max_size=3).map(tuple),
    text,
)
STRATEGIES[Input] = st.builds(
    Input,
    st.none() | STRATEGIES[BaseInstaller],
    st.lists(STRATEGIES[ExtensionInput], max_size=3).map(tuple),
    st.none() | STRATEGIES[SchematicExtension],
    st.none() | STRATEGIES[SecureBootInput],
)
STRATEGIES[Output] = st.builds(
    Output,
    st.sampled_from(OutputKind),
    st.sampled_from(Compression),
    st.none() | STRATEGIES[ImageOptions],
    st.none() | STRATEGIES[ISOOptions],
)
profiles = st.builds(
    Profile,
    arch=st.sampled_from(Arch),
    platform=st.sampled_from(Platform),
    output=STRATEGIES[Output],
    secureboot=st.booleans(),
    version=st.none() | versions,
    name=text,
    customization=STRATEGIES[Customization],
    input=STRATEGIES[Input],
    overlay=st.none() | STRATEGIES[OverlayInput],
)
input_maps = st.dictionaries(st.text(min_size=1, max_size=10), digests, max_size=4)
NAMESPACE = {**vars(profile_module), "Version": Version, "OptionMap": OptionMap, "MetaValue": MetaValue}


def mutate(obj: Any, data: st.DataObject) -> Any:
    """Change exactly one leaf field of a (nested) frozen dataclass, chosen by hypothesis."""
    hints = typing.get_type_hints(type(obj), globalns=NAMESPACE)
    f = data.draw(st.sampled_from(fields(obj)))
    return replace(obj, **{f.name: _mutate_value(getattr(obj, f.name), hints[f.name], data)})


def _mutate_value(value: Any, hint: Any, data: st.DataObject) -> Any:
    if value is None:
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return data.draw(STRATEGIES[inner] if inner in STRATEGIES else st.sampled_from(inner))
    if isinstance(value, Version):
        return Version(value.major, value.minor, value.patch + 1, value.pre)
    if isinstance(value, OptionMap):
        return OptionMap({**value.to_python(), "extra-key": "x"})
    if is_dataclass(value):
        return mutate(value, data)
    if isinstance(value, Enum):
        return data.draw(st.sampled_from([m for m in type(value) if m is not value]))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        drop: bool = data.draw(st.booleans())
        if value and drop:
            return value[:-1]
        args = typing.get_args(hint if typing.get_origin(hint) is tuple else _strip_optional(hint))
        return (*value, data.draw(STRATEGIES.get(args[0], text)))
    raise AssertionError(f"no mutation for {type(value).__name__}")


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


@settings(max_examples=300)
@given(profiles, input_maps)
def test_same_profile_same_key(profile: Profile, inputs: dict[str, str]) -> None:
    rebuilt = _rebuild(profile)
    assert rebuilt == profile and rebuilt is not profile
    key = asset_key(profile, inputs)
    assert key == asset_key(rebuilt, dict(reversed(list(inputs.items()))))
    assert len(key) == 64 and int(key, 16) >= 0


@settings(max_examples=500)
@given(profiles, input_maps, st.data())
def test_any_field_change_changes_key(profile: Profile, inputs: dict[str, str], data: st.DataObject) -> None:
    changed = mutate(profile, data)
    assert changed != profile
    assert asset_key(changed, inputs) != asset_key(profile, inputs)


@given(profiles, input_maps.filter(bool), st.data())
def test_any_input_digest_change_changes_key(profile: Profile, inputs: dict[str, str], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(inputs)))
    changed = {**inputs, name: inputs[name] + "0"}
    assert asset_key(profile, changed) != asset_key(profile, inputs)
    fewer = {k: v for k, v in inputs.items() if k != name}
    assert asset_key(profile, fewer) != asset_key(profile, inputs)
    renamed = {**fewer, name + "/other": inputs[name]}
    assert asset_key(profile, renamed) != asset_key(profile, inputs)


def _rebuild(obj: Any) -> Any:
    """A deep, field-by-field copy (new objects, equal values)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return type(obj)(**{f.name: _rebuild(getattr(obj, f.name)) for f in fields(obj)})
    if isinstance(obj, tuple):
        return tuple(_rebuild(item) for item in obj)
    if isinstance(obj, OptionMap):
        return OptionMap(obj.to_python())
    return obj


def test_option_types_are_kept_apart() -> None:
    """Options enter the key as their canonical YAML, the bytes the overlay installer receives: Go types
    stay apart (`1` vs `"1"`), while `1.0` and `1` marshal alike in Go and therefore may share a key."""
    base = parse_profile_path("metal-arm64.raw.xz", Version(1, 10, 0))
    keys = {
        asset_key(replace(base, overlay=OverlayInput("n", "i", "r", "d", OptionMap(opts))), {})
        for opts in ({1: "a"}, {"1": "a"}, {"a": 1}, {"a": "1"}, {"a": True}, {"a": "true"})
    }
    assert len(keys) == 6


def test_kernel_args_split_matters() -> None:
    base = parse_profile_path("metal-amd64.iso", Version(1, 10, 0))
    one = replace(base, customization=Customization(extra_kernel_args=("a b",)))
    two = replace(base, customization=Customization(extra_kernel_args=("a", "b")))
    assert asset_key(one, {}) != asset_key(two, {})


def test_document_shape() -> None:
    p = replace(parse_profile_path("metal-amd64.iso", Version(1, 10, 0)), version=Version(1, 10, 0), name="Talos")
    doc = json.loads(key_document(p, {"imager/vmlinuz": "sha256:aa"}))
    assert doc["format"] == BUILDER_FORMAT_VERSION
    assert doc["inputs"] == {"imager/vmlinuz": "sha256:aa"}
    assert doc["salts"] == []
    assert doc["profile"] == canonical_profile(p)
    assert doc["profile"]["version"] == "1.10.0"
    assert doc["profile"]["output"] == {"kind": "iso", "out_format": "raw", "image_options": None, "iso_options": None}


def test_golden_key() -> None:
    """Pins the canonical form. If this changes, the key derivation changed: bump BUILDER_FORMAT_VERSION."""
    p = replace(parse_profile_path("metal-amd64.iso", Version(1, 10, 0)), version=Version(1, 10, 0), name="Talos")
    document = key_document(p, {"imager/vmlinuz": "sha256:aa"})
    assert document == (
        b'{"format":1,"inputs":{"imager/vmlinuz":"sha256:aa"},"profile":{"arch":"amd64","customization":'
        b'{"embedded_machine_configuration":"","extra_kernel_args":[],"meta_contents":[]},"input":'
        b'{"base_installer":null,"schematic_extension":null,"secureboot":null,"system_extensions":[]},'
        b'"name":"Talos","output":{"image_options":null,"iso_options":null,"kind":"iso","out_format":"raw"},'
        b'"overlay":null,"platform":"metal","secureboot":false,"version":"1.10.0"},"salts":[]}'
    )


def test_salts_apply_to_their_profiles_only() -> None:
    assert [s.tag for s in KEY_SALTS] == [
        "meta-gzip-zlib-9", "secureboot-lockdown-before-1.14-only", "overlay-installer-get-options-install",
    ]  # fmt: skip
    long_meta = Customization(meta_contents=(MetaValue(0x0C, "x" * 300),))
    v = Version(1, 10, 0)
    iso = replace(parse_profile_path("metal-amd64.iso", v), version=v, customization=long_meta)
    disk = replace(parse_profile_path("metal-amd64.raw", v), version=v, customization=long_meta)
    old = replace(iso, version=Version(1, 6, 2))
    assert json.loads(key_document(iso, {}))["salts"] == ["meta-gzip-zlib-9"]
    assert json.loads(key_document(disk, {}))["salts"] == []  # META goes to the partition
    assert json.loads(key_document(old, {}))["salts"] == []  # no gzip before 1.6.3
    sb = replace(parse_profile_path("metal-amd64-secureboot.iso", v), version=Version(1, 14, 0))
    assert json.loads(key_document(sb, {}))["salts"] == ["secureboot-lockdown-before-1.14-only"]
    assert json.loads(key_document(replace(sb, version=Version(1, 13, 0)), {}))["salts"] == []
    board = OverlayInput("rpi_generic", "siderolabs/sbc-raspberrypi", "r", "sha256:aa")
    sbc = replace(parse_profile_path("metal-arm64.raw.xz", v), version=v, overlay=board)
    assert json.loads(key_document(sbc, {}))["salts"] == ["overlay-installer-get-options-install"]
    initramfs = replace(parse_profile_path("initramfs-arm64.xz", v), version=v, overlay=board)
    assert json.loads(key_document(initramfs, {}))["salts"] == []  # nothing the installer says reaches it


@pytest.mark.parametrize("inputs", [{"": "sha256:aa"}, {"x": ""}, {"x": 1}])
def test_bad_inputs(inputs: dict[str, Any]) -> None:
    p = parse_profile_path("metal-amd64.iso", Version(1, 10, 0))
    with pytest.raises(ValueError):
        asset_key(p, inputs)

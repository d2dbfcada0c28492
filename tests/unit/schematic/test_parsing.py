"""Strict decoding: go-yaml `KnownFields(true)` behaviour, Go scalar rules and hostile input."""

from __future__ import annotations

import time

import pytest

from services.schematic.canonical import canonical_yaml
from services.schematic.model import Bootloader, GoTime, MetaValue, OptionMap, Schematic
from services.schematic.parsing import decode_schematic, parse_schematic
from services.schematic.yamltree import MAX_BODY_BYTES
from services.shared.errors import InvalidArgument, PayloadTooLarge

CE = "yaml: construct errors: "


def _error(body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(InvalidArgument) as info:
        parse_schematic(raw)
    return info.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("something:", CE + "line 1: field something not found in type schematic.Schematic"),
        ("customization:\n  foo: 1", CE + "line 2: field foo not found in type schematic.Customization"),
        ("overlay:\n  image: x\n  bar: 1", CE + "line 3: field bar not found in type schematic.Overlay"),
        (
            "customization:\n  meta:\n    - key: 1\n      value: x\n      extra: y",
            CE + "line 5: field extra not found in type schematic.MetaValue",
        ),
        (
            "customization: {systemExtensions: {extensions: [a]}}",
            CE + "line 1: field extensions not found in type schematic.SystemExtensions",
        ),
        (
            "customization:\n  secureboot:\n    enroll: true",
            CE + "line 3: field enroll not found in type schematic.SecureBootCustomization",
        ),
        (
            "customization:\n  diskImage:\n    size: 512",
            CE + "line 3: field size not found in type schematic.DiskImageCustomization",
        ),
        (
            "a: 1\ncustomization:\n  b: 2\nc: 3",
            CE
            + "line 1: field a not found in type schematic.Schematic; "
            + "line 3: field b not found in type schematic.Customization; "
            + "line 4: field c not found in type schematic.Schematic",
        ),
        ('{"Customization": {}}', CE + "line 1: field Customization not found in type schematic.Schematic"),
    ],
)
def test_unknown_fields(body: str, message: str) -> None:
    assert _error(body) == message


def test_owner_is_enterprise_only() -> None:
    assert _error("owner: someone") == "owner field is only supported in Enterprise edition"
    assert parse_schematic(b"owner: someone", enterprise=True).owner == "someone"
    assert decode_schematic(b"owner: someone").owner == "someone"
    assert parse_schematic(b'owner: ""') == Schematic()


@pytest.mark.parametrize("body", [b"", b"\n\n", b"# just a comment\n", b"   "])
def test_no_document_is_eof(body: bytes) -> None:
    assert _error(body) == "EOF"


@pytest.mark.parametrize("body", [b"---\n", b"~", b"null", b"--- ~\n...\n"])
def test_null_document_is_empty_schematic(body: bytes) -> None:
    assert parse_schematic(body) == Schematic()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("grub", Bootloader.GRUB),
        ("GRUB", Bootloader.GRUB),
        ("Dual-Boot", Bootloader.DUAL_BOOT),
        ("sd-boot", Bootloader.SD_BOOT),
        ("none", Bootloader.NONE),
        ("~", Bootloader.NONE),
    ],
)
def test_bootloader_values(value: str, expected: Bootloader) -> None:
    body = f"customization:\n  bootloader: {value}\n".encode()
    assert parse_schematic(body).customization.bootloader is expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("auto", "line 2: auto does not belong to BootloaderKind values"),
        ('""', "line 2:  does not belong to BootloaderKind values"),
        ("5", "line 2: 5 does not belong to BootloaderKind values"),
        ("[grub]", "line 2: cannot construct !!seq into imageropts.BootloaderKind (TextUnmarshaler)"),
    ],
)
def test_bad_bootloader(value: str, message: str) -> None:
    assert _error(f"customization:\n  bootloader: {value}\n") == CE + message


@pytest.mark.parametrize(
    ("key", "expected"),
    [("10", 10), ("0xa", 10), ("0o12", 10), ("012", 10), ("0b1010", 10), ("1_0", 10), ("+10", 10), ("255", 255),
     ("10.9", 10), ("-0", 0), ("~", 0)],
)  # fmt: skip
def test_meta_key_accepts_go_integers(key: str, expected: int) -> None:
    body = f"customization:\n  meta:\n    - key: {key}\n      value: v\n".encode()
    assert parse_schematic(body).customization.meta == (MetaValue(expected, "v"),)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("256", "cannot construct !!int `256` into uint8"),
        ("-1", "cannot construct !!int `-1` into uint8"),
        ("0x100", "cannot construct !!int `0x100` into uint8"),
        ('"10"', "cannot construct !!str `10` into uint8"),
        ("true", "cannot construct !!bool `true` into uint8"),
        ("abc", "cannot construct !!str `abc` into uint8"),
        ("2024-01-02", "cannot construct !!timestamp `2024-01-02` into uint8"),
        ("[1]", "cannot construct !!seq into uint8"),
    ],
)
def test_meta_key_out_of_range(key: str, message: str) -> None:
    assert _error(f"customization:\n  meta:\n    - key: {key}\n      value: v\n") == CE + "line 3: " + message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("customization:\n  extraKernelArgs: 5", "line 2: cannot construct !!int `5` into []string"),
        ("customization:\n  extraKernelArgs: {a: b}", "line 2: cannot construct !!map into []string"),
        ("customization:\n  extraKernelArgs: [[a]]", "line 2: cannot construct !!seq into string"),
        ("customization: []", "line 1: cannot construct !!seq into schematic.Customization"),
        ("customization: 12345678901", "line 1: cannot construct !!int `1234567...` into schematic.Customization"),
        ("foo", "line 1: cannot construct !!str `foo` into schematic.Schematic"),
        ("customization:\n  secureboot:\n    includeWellKnownCertificates: 1",
         "line 3: cannot construct !!int `1` into bool"),
        ("customization:\n  secureboot:\n    includeWellKnownCertificates: 'true'",
         "line 3: cannot construct !!str `true` into bool"),
        ("customization:\n  diskImage:\n    sectorSize: -1", "line 3: cannot construct !!int `-1` into uint"),
        ("overlay:\n  options: [a]", "line 2: cannot construct !!seq into map[string]interface {}"),
        ("overlay:\n  options:\n    ? [a]\n    : b", "line 3: cannot construct !!seq into string"),
    ],
)  # fmt: skip
def test_wrong_types(body: str, message: str) -> None:
    assert _error(body) == CE + message


def test_duplicate_keys() -> None:
    assert _error("customization: {}\ncustomization: {}") == (
        CE + 'line 2: mapping key "customization" already defined at line 1'
    )
    body = "customization:\n  extraKernelArgs: []\n  extraKernelArgs: []\n  extraKernelArgs: []\n"
    assert _error(body) == CE + "; ".join(
        [
            'line 3: mapping key "extraKernelArgs" already defined at line 2',
            'line 4: mapping key "extraKernelArgs" already defined at line 2',
            'line 4: mapping key "extraKernelArgs" already defined at line 3',
        ]
    )


def test_go_scalar_rules() -> None:
    body = b"""
customization:
  extraKernelArgs: [a, ~, 1, true, 2024-01-02, "", 'x']
  secureboot:
    includeWellKnownCertificates: "yes"
    enrollKeys: 0x10
  diskImage:
    sectorSize: 0x1000
"""
    customization = parse_schematic(body).customization
    # Nulls in a []string are dropped; other scalars keep their source text.
    assert customization.extra_kernel_args == ("a", "1", "true", "2024-01-02", "", "x")
    assert customization.secureboot.include_well_known_certificates is True
    assert customization.secureboot.enroll_keys == "0x10"
    assert customization.disk_image.sector_size == 4096


def test_json_input() -> None:
    body = b"""{
        "overlay": {"image": "siderolabs/sbc-rockchip", "name": "rock5b", "options": {"a": [1, "x", null]}},
        "customization": {
            "extraKernelArgs": ["console=ttyS0"],
            "meta": [{"key": 12, "value": "{\\"a\\": \\"\\u00e9\\"}"}],
            "systemExtensions": {"officialExtensions": ["siderolabs/iscsi-tools"]},
            "bootloader": "sd-boot",
            "secureboot": {"enrollKeys": "auto", "includeWellKnownCertificates": true},
            "diskImage": {"sectorSize": 4096}
        }
    }"""
    schematic = parse_schematic(body)
    assert schematic.overlay.options == OptionMap({"a": (1, "x", None)})
    assert schematic.customization.meta == (MetaValue(12, '{"a": "\u00e9"}'),)
    assert schematic.customization.bootloader is Bootloader.SD_BOOT
    assert schematic.customization.secureboot.enroll_keys == "auto"
    assert parse_schematic(canonical_yaml(schematic).encode()) == schematic


def test_options_keep_go_types() -> None:
    body = b"""
overlay:
  name: x
  image: y
  options:
    1: int key becomes a string at the top level
    nested: {1: a, b: 2, c: 1.5, d: ~, e: 2024-01-02, f: [yes, "no"]}
"""
    options = parse_schematic(body).overlay.options
    assert options["1"] == "int key becomes a string at the top level"
    nested = options["nested"]
    assert isinstance(nested, OptionMap)
    assert nested == OptionMap({1: "a", "b": 2, "c": 1.5, "d": None, "e": GoTime(2024, 1, 2), "f": ("yes", "no")})
    assert canonical_yaml(parse_schematic(body)) == (
        "overlay:\n"
        '    image: "y"\n'
        "    name: x\n"
        "    options:\n"
        '        "1": int key becomes a string at the top level\n'
        "        nested:\n"
        "            1: a\n"
        "            b: 2\n"
        "            c: 1.5\n"
        "            d: null\n"
        "            e: 2024-01-02T00:00:00Z\n"
        "            f:\n"
        '                - "yes"\n'
        '                - "no"\n'
        "customization: {}\n"
    )


def test_anchors_aliases_and_merges() -> None:
    body = b"""
overlay:
  image: img
  name: &n rpi
  options: {base: &base {a: 1, b: 2}, derived: {<<: *base, b: 3}}
customization:
  extraKernelArgs: &args [a, b]
  systemExtensions:
    officialExtensions: *args
  secureboot:
    <<: {enrollKeys: merged, includeWellKnownCertificates: true}
    enrollKeys: explicit
"""
    schematic = parse_schematic(body)
    assert schematic.overlay.name == "rpi"
    assert schematic.overlay.options["derived"] == OptionMap({"a": 1, "b": 3})
    assert schematic.customization.system_extensions.official_extensions == ("a", "b")
    assert schematic.customization.secureboot.enroll_keys == "explicit"
    assert schematic.customization.secureboot.include_well_known_certificates is True


def test_first_document_only() -> None:
    assert parse_schematic(b"customization: {}\n---\nsomething: else\n") == Schematic()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"a: b: c", "yaml: line 1: mapping values are not allowed in this context"),
        (b"customization: \xff", "yaml: invalid leading UTF-8 octet"),
        (b"customization: \x01", "yaml: control characters are not allowed"),
        (b"customization: *nope", "yaml: unknown anchor 'nope' referenced"),
        (b"overlay:\n  options: {a: &a [*a]}", "yaml: anchor 'a' value contains itself"),
        (b"customization:\n  extraKernelArgs: !!int x", "yaml: cannot construct !!str `x` as a !!int"),
        (b"overlay:\n  options: {<<: [1]}", "yaml: map merge requires map or sequence of maps as the value"),
        (b"customization:\n  embeddedMachineConfiguration: !!binary '%%%'",
         "yaml: !!binary value contains invalid base64 data"),
    ],
)  # fmt: skip
def test_fatal_errors(body: bytes, message: str) -> None:
    assert _error(body) == message


def test_binary_strings_are_decoded() -> None:
    body = b"customization:\n  embeddedMachineConfiguration: !!binary aGVsbG8=\n"
    assert parse_schematic(body).customization.embedded_machine_configuration == "hello"


# --- hostile input ---------------------------------------------------------------------------------

_LAUGHS = "".join(
    f"    {name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "body",
    [
        "overlay:\n  options:\n" + _LAUGHS,
        "overlay:\n  image: x\n  options:\n" + _LAUGHS + "customization:\n  extraKernelArgs: *i\n",
        # Anchors hidden under unknown fields are not decoded, but the alias that uses them is.
        "junk:\n" + _LAUGHS.replace("    ", "  ", 9) + "overlay:\n  options:\n    x: *i\n",
    ],
)
def test_billion_laughs_is_refused_quickly(body: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidArgument, match="excessive aliasing"):
        parse_schematic(body.encode())
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "body",
    [
        "[" * 10_000 + "]" * 10_000,
        "{a: " * 10_000 + "}" * 10_000,
        "- " * 10_000 + "x",
        "".join("  " * depth + "a:\n" for depth in range(800)),
        "overlay:\n  options:\n    x: " + "[" * 70 + "]" * 70,
    ],
)
def test_deep_nesting_is_refused_quickly(body: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidArgument, match="exceeded max depth of 64"):
        parse_schematic(body.encode())
    assert time.perf_counter() - started < 1.0


def test_oversized_body() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_schematic(b"#" * (MAX_BODY_BYTES + 1))


def test_many_duplicate_keys_are_cheap() -> None:
    body = "customization:\n" + "  bootloader: grub\n" * 20_000
    started = time.perf_counter()
    message = _error(body)
    assert time.perf_counter() - started < 2.0
    assert message.startswith(CE + 'line 3: mapping key "bootloader" already defined at line 2; ')
    assert message.count(";") == 99  # capped

"""Emitter details: how go-yaml's Marshal writes each kind of string, number and map."""

from __future__ import annotations

import math

import pytest

from services.schematic.canonical import canonical_yaml, go_format_float
from services.schematic.model import Customization, GoTime, MetaValue, OptionMap, Overlay, Schematic
from services.schematic.parsing import parse_schematic
from services.schematic.resolve import FLOAT, INT, STR, TIMESTAMP, needs_quotes, resolve


def _arg_line(value: str) -> str:
    text = canonical_yaml(Schematic(customization=Customization(extra_kernel_args=(value,))))
    prefix = "customization:\n    extraKernelArgs:\n        - "
    assert text.startswith(prefix)
    return text[len(prefix) :]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        # Would resolve to another type: double quotes.
        ("true", '"true"'), ("True", '"True"'), ("yes", '"yes"'), ("off", '"off"'), ("y", '"y"'),
        ("10", '"10"'), ("0x1", '"0x1"'), ("0o17", '"0o17"'), ("012", '"012"'), ("1_000", '"1_000"'),
        ("1e3", '"1e3"'), (".5", '".5"'), ("-.inf", '"-.inf"'), (".NaN", '".NaN"'), ("08", '"08"'),
        ("", '""'), ("~", '"~"'), ("null", '"null"'), ("NULL", '"NULL"'), ("<<", '"<<"'),
        ("1:20", '"1:20"'), ("2001-12-14", '"2001-12-14"'),
        ("2001-12-14t21:59:43.10-05:00", '"2001-12-14t21:59:43.10-05:00"'),
        # Strings that stay strings even though they look numeric-ish.
        ("1e400", "1e400"), ("2001-12-14T21:59:43", "2001-12-14T21:59:43"), ("0x", "0x"), ("1.2.3", "1.2.3"),
        ("nan", "nan"), ("Yes!", "Yes!"), ("v1.2.3", "v1.2.3"), ("a:b", "a:b"), ("a#b", "a#b"), ("it's", "it's"),
        ("console=ttyS0,115200", "console=ttyS0,115200"), ("é", "é"), ("-x", "-x"), ("a[b]", "a[b]"),
        # Syntax problems: single quotes.
        ("{a}", "'{a}'"), ("[a]", "'[a]'"), ("- x", "'- x'"), ("-", "'-'"), ("? x", "'? x'"), (": x", "': x'"),
        ("a: b", "'a: b'"), ("a:", "'a:'"), ("a #b", "'a #b'"), ("#a", "'#a'"), ("&a", "'&a'"), ("*a", "'*a'"),
        ("!a", "'!a'"), ("%a", "'%a'"), ("@a", "'@a'"), ("`a", "'`a'"), ("|", "'|'"), (">", "'>'"),
        ("'x", "'''x'"), ('"x', "'\"x'"), (" x", "' x'"), ("x ", "'x '"), ("---", "'---'"), ("...x", "'...x'"),
        ("\u2028", "'\u2028'"),
        # Special characters: double quotes with escapes.
        ("a\tb", '"a\\tb"'), ("\x01", '"\\x01"'), ("\x7f", '"\\x7F"'), ("\x85", '"\\N"'), ("a\r\nb", '"a\\r\\nb"'),
        ("😀", '"\\U0001F600"'), ("x\ufeff", '"x\\uFEFF"'), ("\ufeffab", '"\\uFEFF\\x61\\x62"'),
        ("\n", '"\\n"'), ("\n\n", '"\\n\\n"'), (" \n", '" \\n"'), ("a \nb", '"a \\nb"'), ("a\nb ", '"a\\nb "'),
    ],
)  # fmt: skip
def test_string_styles(value: str, written: str) -> None:
    assert _arg_line(value) == written + "\n"
    schematic = Schematic(customization=Customization(extra_kernel_args=(value,)))
    assert parse_schematic(canonical_yaml(schematic).encode()) == schematic


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("a\nb", "|-\n        a\n        b\n"),
        ("a\nb\n", "|\n        a\n        b\n"),
        ("a\nb\n\n", "|+\n        a\n        b\n\n"),  # empty lines carry no indentation
        ("a\n\nb", "|-\n        a\n\n        b\n"),
        ("\na", "|-\n\n        a\n"),
        (" a\nb", "|4-\n         a\n        b\n"),
        ("a\n b", "|-\n        a\n         b\n"),
        ("a\n\tb", "|-\n        a\n        \tb\n"),
        ("k: v\nl: w", "|-\n        k: v\n        l: w\n"),
    ],
)
def test_literal_blocks(value: str, written: str) -> None:
    schematic = Schematic(customization=Customization(embedded_machine_configuration=value))
    text = canonical_yaml(schematic)
    assert text == "customization:\n    embeddedMachineConfiguration: " + written
    assert parse_schematic(text.encode()) == schematic


def test_literal_in_sequences_is_indented_after_the_dash() -> None:
    schematic = Schematic(customization=Customization(extra_kernel_args=("a\nb",), meta=(MetaValue(1, "x\ny\n"),)))
    assert canonical_yaml(schematic) == (
        "customization:\n"
        "    extraKernelArgs:\n"
        "        - |-\n"
        "          a\n"
        "          b\n"
        "    meta:\n"
        "        - key: 1\n"
        "          value: |\n"
        "            x\n"
        "            y\n"
    )
    assert parse_schematic(canonical_yaml(schematic).encode()) == schematic


def test_options_sorting_and_shapes() -> None:
    options = OptionMap(
        [
            ("b", 1),
            ("a10", 1),
            ("a9", 1),
            ("B", 1),
            ("a", OptionMap([(2, "two"), (True, "t"), (1.5, "f"), (None, "n"), ("s", "s"), (10, "ten")])),
            ("empty", OptionMap()),
            ("list", ()),
            ("nested", ({"x": 1, "y": [1, 2]}, [3], "s")),
            ("when", GoTime(2024, 1, 2, 3, 4, 5, 600_000_000, -5 * 3600)),
            ("k" * 129, "long key"),
            ("multi\nline", "key"),
        ]
    )
    text = canonical_yaml(Schematic(overlay=Overlay(name="x", options=options)))
    assert text == (
        "overlay:\n"
        '    image: ""\n'
        "    name: x\n"
        "    options:\n"
        "        B: 1\n"
        "        a:\n"
        "            true: t\n"
        "            1.5: f\n"
        "            2: two\n"
        "            10: ten\n"
        '            null: "n"\n'
        "            s: s\n"
        "        a9: 1\n"
        "        a10: 1\n"
        "        b: 1\n"
        "        empty: {}\n"
        "        ? " + "k" * 129 + "\n"
        "        : long key\n"
        "        list: []\n"
        "        ? |-\n"
        "            multi\n"
        "            line\n"
        "        : key\n"
        "        nested:\n"
        "            - x: 1\n"
        '              "y":\n'
        "                - 1\n"
        "                - 2\n"
        "            - - 3\n"
        "            - s\n"
        "        when: 2024-01-02T03:04:05.6-05:00\n"
        "customization: {}\n"
    )
    parsed = parse_schematic(text.encode())
    assert parsed.overlay.options == options
    assert canonical_yaml(parsed) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"), (1.5, "1.5"), (0.1, "0.1"), (100000.0, "100000"), (1e6, "1e+06"), (123456.5, "123456.5"),
        (1234567.5, "1.2345675e+06"), (0.0001, "0.0001"), (0.00001, "1e-05"), (1.5e300, "1.5e+300"),
        (-2.5e-7, "-2.5e-07"), (0.0, "0"), (-0.0, "-0"), (math.inf, ".inf"), (-math.inf, "-.inf"),
        (math.nan, ".nan"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)  # fmt: skip
def test_go_format_float(value: float, text: str) -> None:
    assert go_format_float(value) == text


@pytest.mark.parametrize(
    ("text", "tag", "value"),
    [
        ("0xA", INT, 10), ("-0b11", INT, -3), ("0o_7", INT, 7), ("9223372036854775808", INT, 2**63),
        ("18446744073709551616", FLOAT, 2.0**64), ("+1_0", INT, 10), ("1.", FLOAT, 1.0), ("-1E-2", FLOAT, -0.01),
        ("2024-02-29", TIMESTAMP, GoTime(2024, 2, 29)), ("2023-02-29", STR, "2023-02-29"),
        ("2024-1-2 3:4:5", TIMESTAMP, GoTime(2024, 1, 2, 3, 4, 5)),
        ("2024-01-02T03:04:05,5+01:30", TIMESTAMP, GoTime(2024, 1, 2, 3, 4, 5, 500_000_000, 5400)),
        ("2024-01-02T24:00:00Z", STR, "2024-01-02T24:00:00Z"), ("yes", STR, "yes"), ("._5", STR, "._5"),
    ],
)  # fmt: skip
def test_resolve(text: str, tag: str, value: object) -> None:
    assert resolve("", text) == (tag, value)


def test_needs_quotes_for_yaml11_words() -> None:
    assert needs_quotes("ON") and needs_quotes("n") and not needs_quotes("nope")

"""Property tests: the canonical form is a fixed point and reads back as the same schematic."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.schematic.canonical import canonical_yaml
from services.schematic.ids import schematic_id
from services.schematic.model import (
    Bootloader,
    Customization,
    DiskImageCustomization,
    GoTime,
    MetaValue,
    OptionKey,
    OptionMap,
    OptionValue,
    Overlay,
    Schematic,
    SecureBootCustomization,
    SystemExtensions,
)
from services.schematic.parsing import decode_schematic

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to YAML syntax, whitespace and line breaks of every kind, and non-ASCII.
_TRICKY = (
    string.ascii_letters[:6]
    + "019 .:-#{}[],&*!|>'\"%@`?~=<_\\/"
    + "\t\n\r\x00\x07\x1b\x7f\x85\xa0é中\u2028\u2029\ufeff😀"
)
_LOOKALIKES = [
    "", " ", "true", "True", "FALSE", "yes", "No", "on", "OFF", "y", "n", "~", "null", "Null", "10", "-1", "+1",
    "0x1F", "0o17", "012", "08", "0b101", "1_000", "1e3", "1.", ".5", "-.inf", ".NaN", "-0", "1:20", "1e400",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10", "2001-12-14T21:59:43", "<<", "=",
    "-", "- a", "? a", ": a", "a: b", "a #b", "#a", "a#b", "---", "...", "--- a", "a\n", "\na", "a\nb", "a\n\n",
    "a\r\nb", "\n", "a \nb", "\ta\nb", "a\n\tb", "key: value\nother: 'x'\n", "a\u2028b\nc",
]  # fmt: skip
texts = st.one_of(
    st.sampled_from(_LOOKALIKES),
    st.text(alphabet=_TRICKY, max_size=12),
    st.text(max_size=8),
    st.builds(lambda a, b: a + b, st.sampled_from(_LOOKALIKES), st.text(alphabet=_TRICKY, max_size=4)),
)

_timestamps = st.builds(
    GoTime,
    year=st.integers(0, 9999),
    month=st.integers(1, 12),
    day=st.integers(1, 28),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    second=st.integers(0, 59),
    nanosecond=st.integers(0, 999_999_999),
    offset_seconds=st.builds(lambda h, m, sign: sign * (h * 3600 + m * 60), st.integers(0, 23), st.integers(0, 59),
                             st.sampled_from([1, -1])),
)  # fmt: skip
# Integral floats are written like ints (`1`) and read back as ints, exactly as in Go.
_floats = st.floats(allow_nan=False, allow_infinity=True).filter(lambda f: not f.is_integer())
_ints = st.integers(-(2**63), 2**64 - 1)
_scalars: st.SearchStrategy[OptionValue] = st.one_of(st.none(), st.booleans(), _ints, _floats, texts, _timestamps)
# Keys of different Go types must not print alike (`1` and `"1"`): Go itself could not read that back.
_nested_keys: st.SearchStrategy[OptionKey] = st.one_of(
    st.none(), st.booleans(), _ints, _floats, _timestamps, texts.map(lambda t: "k" + t)
)


def _maps(values: st.SearchStrategy[OptionValue], keys: st.SearchStrategy[OptionKey]) -> st.SearchStrategy[OptionMap]:
    return st.lists(st.tuples(keys, values), max_size=4).map(OptionMap)


_values: st.SearchStrategy[OptionValue] = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple), _maps(inner, _nested_keys)),
    max_leaves=8,
)
_tuples = st.lists(texts, max_size=3).map(tuple)

schematics = st.builds(
    Schematic,
    owner=st.one_of(st.just(""), texts),
    overlay=st.builds(Overlay, image=texts, name=texts, options=_maps(_values, texts)),
    customization=st.builds(
        Customization,
        embedded_machine_configuration=texts,
        extra_kernel_args=_tuples,
        meta=st.lists(st.builds(MetaValue, key=st.integers(0, 255), value=texts), max_size=3).map(tuple),
        system_extensions=st.builds(SystemExtensions, official_extensions=_tuples),
        bootloader=st.sampled_from(Bootloader),
        secureboot=st.builds(SecureBootCustomization, enroll_keys=texts, include_well_known_certificates=st.booleans()),
        disk_image=st.builds(DiskImageCustomization, sector_size=st.integers(0, 2**64 - 1)),
    ),
)


def _strings(value: object) -> list[str]:
    """Every string inside a schematic (field values, option keys and values)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, OptionMap):
        return [s for key, item in value.items() for s in _strings(key) + _strings(item)]
    if isinstance(value, tuple):
        return [s for item in value for s in _strings(item)]
    if hasattr(value, "__dataclass_fields__"):
        return [s for name in value.__dataclass_fields__ for s in _strings(getattr(value, name))]
    return []


def _go_literal_bug(text: str) -> bool:
    """go-yaml writes a literal block whose first content line starts with a space or a tab with a
    wrong or missing indentation indicator (yaml/go-yaml#76, #383, #396, #399); Go cannot read those
    values back either, so the round trip is only checked for other strings."""
    return "\n" in text and text.lstrip("\n\r\x85\u2028\u2029").startswith((" ", "\t"))


@SETTINGS
@given(schematics)
def test_canonical_form_round_trips(schematic: Schematic) -> None:
    assume(not any(_go_literal_bug(s) for s in _strings(schematic)))
    text = canonical_yaml(schematic)
    assert text.endswith("\n")
    parsed = decode_schematic(text.encode())
    assert parsed == schematic
    assert canonical_yaml(parsed) == text
    assert schematic_id(parsed) == schematic_id(schematic)


@SETTINGS
@given(st.builds(Customization, extra_kernel_args=_tuples, embedded_machine_configuration=texts), texts)
def test_strings_round_trip_everywhere(customization: Customization, text: str) -> None:
    assume(not any(_go_literal_bug(s) for s in [text, *_strings(customization)]))
    schematic = Schematic(
        overlay=Overlay(image=text, name=text, options=OptionMap({text: text, "k": (text,), "m": {"k" + text: text}})),
        customization=Customization(
            embedded_machine_configuration=text,
            extra_kernel_args=(text, *customization.extra_kernel_args),
            meta=(MetaValue(1, text),),
        ),
    )
    assert decode_schematic(canonical_yaml(schematic).encode()) == schematic


@SETTINGS
@given(st.builds(Overlay, name=texts, options=_maps(st.one_of(_values, st.floats()), texts)))
def test_canonical_form_is_a_fixed_point(overlay: Overlay) -> None:
    # Includes integral floats, NaN and the Go literal-block bug cases: whatever reads back, the
    # second marshal must equal the first when the first was readable at all.
    assume(not any(_go_literal_bug(s) for s in _strings(overlay)))
    text = canonical_yaml(Schematic(overlay=overlay))
    again = canonical_yaml(decode_schematic(text.encode()))
    assert again == text

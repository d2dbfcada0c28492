"""`Schematic` → canonical YAML, byte-identical to Go `yaml.Marshal(schematic)` (spec §6.3).

This is go-yaml's representer for our types: struct fields in declaration order, `omitempty` fields
dropped when zero (a struct is zero when all its fields are), map keys sorted the go-yaml way, and
each string given the style `stringv` asks for. The emitter then writes the bytes.
"""

from __future__ import annotations

import math
import unicodedata
from decimal import Decimal
from functools import cmp_to_key

from services.schematic import emitter as e
from services.schematic.model import (
    Bootloader,
    Customization,
    GoTime,
    MetaValue,
    OptionKey,
    OptionMap,
    OptionValue,
    Overlay,
    Schematic,
)
from services.schematic.resolve import needs_quotes


def canonical_yaml(schematic: Schematic) -> str:
    return e.emit(_schematic(schematic))


# --- struct representation ---------------------------------------------------------------------


def _fields(*pairs: tuple[str, e.Node | None]) -> e.Map:
    """A struct: fields whose value is None were omitted (omitempty and zero)."""
    return e.Map(tuple((e.Scalar(name), node) for name, node in pairs if node is not None))


def _omit_empty(node: e.Map) -> e.Map | None:
    return node if node.pairs else None


def _schematic(s: Schematic) -> e.Map:
    return _fields(
        ("owner", _string(s.owner) if s.owner else None),
        ("overlay", _overlay(s.overlay)),
        ("customization", _customization(s.customization)),  # not omitempty: `{}` when empty
    )


def _overlay(overlay: Overlay) -> e.Map | None:
    if not (overlay.image or overlay.name or overlay.options):
        return None
    return _fields(
        ("image", _string(overlay.image)),
        ("name", _string(overlay.name)),
        ("options", _option(overlay.options) if overlay.options else None),
    )


def _customization(c: Customization) -> e.Map:
    secureboot = _fields(
        ("enrollKeys", _string(c.secureboot.enroll_keys) if c.secureboot.enroll_keys else None),
        ("includeWellKnownCertificates", e.Scalar("true") if c.secureboot.include_well_known_certificates else None),
    )
    disk_image = _fields(
        ("sectorSize", e.Scalar(str(c.disk_image.sector_size)) if c.disk_image.sector_size else None),
    )
    config, extensions = c.embedded_machine_configuration, c.system_extensions.official_extensions
    return _fields(
        ("embeddedMachineConfiguration", _string(config) if config else None),
        ("extraKernelArgs", _strings(c.extra_kernel_args)),
        ("meta", e.Seq(tuple(_meta(m) for m in c.meta)) if c.meta else None),
        ("systemExtensions", _fields(("officialExtensions", _strings(extensions))) if extensions else None),
        ("bootloader", _string(c.bootloader.value) if c.bootloader is not Bootloader.NONE else None),
        ("secureboot", _omit_empty(secureboot)),
        ("diskImage", _omit_empty(disk_image)),
    )


def _meta(meta: MetaValue) -> e.Map:
    return _fields(("key", e.Scalar(str(meta.key))), ("value", _string(meta.value)))


def _strings(values: tuple[str, ...]) -> e.Seq | None:
    return e.Seq(tuple(_string(v) for v in values)) if values else None


# --- scalars -------------------------------------------------------------------------------------


def _string(text: str) -> e.Scalar:
    """go-yaml `stringv`: the style a string asks for before the emitter has its say."""
    if "\n" in text:
        return e.Scalar(text, e.Style.LITERAL if _literal_ok(text) else e.Style.DOUBLE)
    return e.Scalar(text, e.Style.DOUBLE if needs_quotes(text) else e.Style.PLAIN)


def _literal_ok(text: str) -> bool:
    # go-yaml `shouldUseLiteralStyle`: two bytes or more and something besides whitespace.
    return len(text.encode()) >= 2 and not all(_go_space(ch) for ch in text)


def _go_space(ch: str) -> bool:
    """Go `unicode.IsSpace` (Python's isspace also counts the ASCII separators 0x1C-0x1F)."""
    if ord(ch) <= 0xFF:
        return ch in "\t\n\v\f\r \x85\xa0"
    return ch.isspace()


def go_format_float(value: float) -> str:
    """Go `strconv.FormatFloat(v, 'g', -1, 64)` with go-yaml's names for the specials."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    # repr() gives the shortest round-tripping digits, as Go's shortest formatting does.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # position of the decimal point
    exp = point - 1
    if exp < -4 or exp >= 6:  # %e form, as 'g' uses it for the shortest precision
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _option_scalar(value: OptionKey) -> e.Scalar:
    if value is None:
        return e.Scalar("null")
    if isinstance(value, bool):
        return e.Scalar("true" if value else "false")
    if isinstance(value, int):
        return e.Scalar(str(value))
    if isinstance(value, float):
        return e.Scalar(go_format_float(value))
    if isinstance(value, GoTime):
        return e.Scalar(value.rfc3339nano())
    return _string(value)


def _option(value: OptionValue) -> e.Node:
    if isinstance(value, OptionMap):
        keys = sorted(value, key=cmp_to_key(_go_key_compare))
        return e.Map(tuple((_option_scalar(key), _option(value[key])) for key in keys))
    if isinstance(value, tuple):
        return e.Seq(tuple(_option(item) for item in value))
    return _option_scalar(value)


# --- go-yaml map key order (`keyList.Less`) --------------------------------------------------------

# reflect.Kind numbers decide the order between keys of different types.
_KIND_BOOL, _KIND_INT, _KIND_UINT64, _KIND_FLOAT64 = 1, 2, 11, 14
_KIND_INTERFACE, _KIND_STRING, _KIND_STRUCT = 20, 24, 25


def _kind(key: OptionKey) -> int:
    if key is None:
        return _KIND_INTERFACE  # a nil interface is not unwrapped
    if isinstance(key, bool):
        return _KIND_BOOL
    if isinstance(key, int):
        return _KIND_INT if key < 2**63 else _KIND_UINT64  # go-yaml decodes big values as uint64
    if isinstance(key, float):
        return _KIND_FLOAT64
    if isinstance(key, str):
        return _KIND_STRING
    return _KIND_STRUCT  # time.Time


def _go_key_compare(a: OptionKey, b: OptionKey) -> int:
    return -1 if _go_key_less(a, b) else 1 if _go_key_less(b, a) else 0


def _go_key_less(a: OptionKey, b: OptionKey) -> bool:
    ak, bk = _kind(a), _kind(b)
    numeric = (_KIND_BOOL, _KIND_INT, _KIND_UINT64, _KIND_FLOAT64)
    if ak in numeric and bk in numeric:
        af, bf = float(a), float(b)  # type: ignore[arg-type]
        if af != bf:
            return af < bf
        if ak != bk:
            return ak < bk
        return a < b  # type: ignore[operator]
    if ak != _KIND_STRING or bk != _KIND_STRING:
        return ak < bk
    assert isinstance(a, str) and isinstance(b, str)
    return _natural_less(a, b)


def _natural_less(a: str, b: str) -> bool:
    """go-yaml's string order: letters before digits after a digit run, numbers compared by value."""
    digits = False
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            digits = _is_digit(ca)
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            an = _int64(an * 10 + ord(a[ai]) - ord("0"))  # Go: the rune value, even for non-ASCII digits
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            bn = _int64(bn * 10 + ord(b[bi]) - ord("0"))
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _int64(value: int) -> int:
    """Wrap like Go's int64 arithmetic (long digit runs overflow there)."""
    return (value + 2**63) % 2**64 - 2**63


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"  # Go unicode.IsDigit


def options_yaml(options: OptionMap) -> str:
    """Overlay options alone, in the same canonical form (handed to the overlay installer as YAML)."""
    return e.emit(_option(options)) if options else ""

"""META keys and command-line encoding (imager spec §8.1, §8.2)."""

from __future__ import annotations

import base64
import gzip

from hypothesis import given
from hypothesis import strategies as st

from services.builder.meta import GZIP_THRESHOLD, MetaKey, decode_meta, encode_meta, go_gzip, join_meta
from services.schematic.model import MetaValue


def test_keys() -> None:
    assert MetaKey.UPGRADE.value == 0x06
    assert MetaKey.METAL_NETWORK_PLATFORM_CONFIG.value == 0x0A
    assert MetaKey.USER_RESERVED_3.value == 0x0E
    assert MetaKey.DISK_IMAGE_BOOTLOADER.value == 0x11
    assert [k.value for k in MetaKey] == list(range(0x06, 0x12))


def test_spec_example() -> None:
    values = [MetaValue(0x0A, '{"addresses":[]}'), MetaValue(0x0C, "hello")]
    assert join_meta(values) == b'0xa={"addresses":[]};0xc=hello'
    assert encode_meta(values, allow_gzip=True) == "MHhhPXsiYWRkcmVzc2VzIjpbXX07MHhjPWhlbGxv"
    assert decode_meta("MHhhPXsiYWRkcmVzc2VzIjpbXX07MHhjPWhlbGxv") == values


def test_factory_example() -> None:
    values = [MetaValue(0x0A, '{"externalIPs":["1.2.3.4"]}')]
    assert encode_meta(values, allow_gzip=False) == "MHhhPXsiZXh0ZXJuYWxJUHMiOlsiMS4yLjMuNCJdfQ=="


def test_talos_value_string() -> None:
    """Talos `TestValue`: key 10 renders `0xa=foo`; key 0 `0x0`; no padding."""
    assert join_meta([MetaValue(10, "foo")]) == b"0xa=foo"
    assert join_meta([MetaValue(0, ""), MetaValue(255, "x")]) == b"0x0=;0xff=x"
    assert (
        encode_meta([MetaValue(10, "foo"), MetaValue(0x0B, "bar")], allow_gzip=True)
        == base64.b64encode(b"0xa=foo;0xb=bar").decode()
    )


def test_empty() -> None:
    assert encode_meta([], allow_gzip=True) == ""
    assert decode_meta("") == []


def test_gzip_only_above_threshold_and_when_allowed() -> None:
    exactly = [MetaValue(0x0C, "x" * (GZIP_THRESHOLD - len("0xc=")))]
    assert len(join_meta(exactly)) == GZIP_THRESHOLD
    assert base64.b64decode(encode_meta(exactly, allow_gzip=True)) == join_meta(exactly)
    above = [MetaValue(0x0C, "x" * (GZIP_THRESHOLD - len("0xc=") + 1))]
    gzipped = base64.b64decode(encode_meta(above, allow_gzip=True))
    assert gzipped[:2] == b"\x1f\x8b"
    assert gzip.decompress(gzipped) == join_meta(above)
    assert base64.b64decode(encode_meta(above, allow_gzip=False)) == join_meta(above)


def test_threshold_counts_bytes_not_characters() -> None:
    # 100 three-byte runes: 104 characters but 304 bytes → compressed (Go `len(string)` is bytes).
    values = [MetaValue(0x0C, "€" * 100)]
    assert base64.b64decode(encode_meta(values, allow_gzip=True))[:2] == b"\x1f\x8b"


def test_talos_huge_round_trip() -> None:
    """Talos `TestEncodeDecodeValues` "huge": 3084 base64 characters uncompressed; gzip round-trips."""
    values = [MetaValue(10, "foobar" * 256), MetaValue(0x0B, "baz" * 256)]
    assert len(encode_meta(values, allow_gzip=False)) == 3084
    compressed = encode_meta(values, allow_gzip=True)
    assert len(compressed) < 100
    assert decode_meta(compressed) == values


def test_go_gzip_header() -> None:
    data = b"a" * 300
    member = go_gzip(data)
    # ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=2 (best compression) OS=255 (unknown), as Go's gzip.Writer.
    assert member[:10] == bytes.fromhex("1f8b08000000000002ff")
    assert gzip.decompress(member) == data


@given(
    st.lists(
        st.builds(
            MetaValue,
            key=st.integers(0, 255),
            value=st.text(alphabet=st.characters(codec="utf-8", exclude_characters=";")),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_round_trip(values: list[MetaValue], allow_gzip: bool) -> None:
    assert decode_meta(encode_meta(values, allow_gzip=allow_gzip)) == values

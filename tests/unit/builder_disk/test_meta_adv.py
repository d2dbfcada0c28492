"""META partition bytes in the Talos ADV format (imager spec §8.3)."""

from __future__ import annotations

import hashlib
import struct

import pytest

from services.builder.steps import meta_adv
from services.builder.steps.meta_adv import BLOCK_SIZE, DUAL_BOOT_VALUE, adv_block, merge_values, meta_image, parse_adv
from services.schematic.model import MetaValue


def test_spec_vector_dual_boot() -> None:
    """§8.3 test vector: one tag 0x11 = "dual-boot"."""
    block = adv_block(merge_values([DUAL_BOOT_VALUE]))
    assert len(block) == BLOCK_SIZE
    assert block[:21] == bytes.fromhex("5a4b3c2d" + "00000011" + "00000009") + b"dual-boot"
    assert block[21 : BLOCK_SIZE - 36] == bytes(BLOCK_SIZE - 36 - 21)
    assert block[-36:-4].hex() == "6d0596ed48c85c53cc78720a976e9a7b4bcd961008c286c98c08b1d37df47c89"
    assert block[-4:] == bytes.fromhex("a5b4c3d2")


def test_checksum_covers_block_with_zeroed_field() -> None:
    block = bytearray(adv_block({0x0A: b'{"addresses":[]}', 0x0C: b"hello"}))
    checksum = bytes(block[-36:-4])
    block[-36:-4] = bytes(32)
    assert hashlib.sha256(block).digest() == checksum


def test_meta_image_layout() -> None:
    values = (MetaValue(0x0A, '{"addresses":[]}'), MetaValue(0x0C, "hello"), MetaValue(0x0A, "{}"))
    image = meta_image(values)
    assert len(image) == 1024 * 1024
    assert image[:BLOCK_SIZE] == image[BLOCK_SIZE : 2 * BLOCK_SIZE]
    assert image[2 * BLOCK_SIZE :] == bytes(1024 * 1024 - 2 * BLOCK_SIZE)  # incl. the legacy ADV (last 1 KiB)
    # a repeated key keeps its first position and takes the last value
    assert struct.unpack_from(">II", image, 4) == (0x0A, 2)
    assert parse_adv(image) == {0x0A: b"{}", 0x0C: b"hello"}


def test_no_values_is_all_zeros() -> None:
    assert meta_image(()) == bytes(1024 * 1024)


def test_reader_falls_back_to_second_copy() -> None:
    image = bytearray(meta_image([DUAL_BOOT_VALUE]))
    image[10] ^= 0xFF
    assert parse_adv(bytes(image)) == {0x11: b"dual-boot"}
    image[BLOCK_SIZE + 10] ^= 0xFF
    with pytest.raises(ValueError, match="checksum mismatch"):
        parse_adv(bytes(image))


def test_capacity() -> None:
    room = meta_adv.DATA_LENGTH - 20 - 8  # 20 + Σ(8 + len) ≤ 262 104
    assert parse_adv(adv_block({0x0C: b"x" * room})) == {0x0C: b"x" * room}
    with pytest.raises(ValueError, match="do not fit"):
        adv_block({0x0C: b"x" * (room + 1)})


@pytest.mark.parametrize("key", [0, 256])
def test_unusable_keys(key: int) -> None:
    with pytest.raises(ValueError, match="not a usable tag"):
        merge_values([MetaValue(key, "x")])


def test_partition_too_small() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        meta_image([DUAL_BOOT_VALUE], size=2 * BLOCK_SIZE)

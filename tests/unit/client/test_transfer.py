"""Resumable downloads: cut connections, resumes across processes, servers that ignore or bend ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagefactory_client import AsyncClient, DownloadInterrupted, IntegrityError, Options
from imagefactory_client.transfer import etag_path, parse_content_range, part_path
from tests.unit.client.fake_factory import ISO, SCHEMATIC_ID, FakeFactory

ISO_SHA = hashlib.sha256(ISO).hexdigest()
QUICK = Options(retries=0, retry_delay=0)


async def get(client: AsyncClient, dest: Path, options: Options = QUICK) -> object:
    return await client.download(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", dest, options)


def ranges(factory: FakeFactory) -> list[str | None]:
    return [headers.get("Range") for method, path, headers in factory.requests if path.startswith("/image/")]


async def test_a_cut_connection_keeps_the_part_and_a_second_call_resumes(
    client: AsyncClient, factory: FakeFactory, tmp_path: Path
) -> None:
    dest = tmp_path / "metal-amd64.iso"
    factory.cut_after = [100_000]
    with pytest.raises(DownloadInterrupted) as caught:
        await get(client, dest)
    assert caught.value.received == 100_000
    assert part_path(dest).read_bytes() == ISO[:100_000]
    assert etag_path(dest).read_text() == f'"sha256:{ISO_SHA}"'
    assert not dest.exists()

    result = await client.download(SCHEMATIC_ID, "v1.12.1", "metal-amd64.iso", dest, QUICK)  # a "new process"
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == ISO_SHA == getattr(result, "sha256", None)
    assert getattr(result, "resumed_from", None) == 100_000
    assert ranges(factory) == [None, "bytes=100000-"]
    assert factory.requests[-1][2]["If-Range"] == f'"sha256:{ISO_SHA}"'
    assert not part_path(dest).exists() and not etag_path(dest).exists()


async def test_retries_resume_within_one_call(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    dest = tmp_path / "a.iso"
    factory.cut_after = [50_000, 70_000, 1]
    seen: list[tuple[int, int | None]] = []
    result = await get(client, dest, Options(retries=3, retry_delay=0, progress=lambda d, t: seen.append((d, t))))
    assert dest.read_bytes() == ISO
    assert getattr(result, "attempts", None) == 4
    asked = ranges(factory)
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in asked[1:] if r]
    assert asked[0] is None and len(offsets) == 3
    assert offsets == sorted(offsets) and offsets[0] == 50_000 and offsets[-1] > offsets[0]
    assert seen[-1] == (len(ISO), len(ISO))
    assert all(total == len(ISO) for _, total in seen)  # a 206 reports the whole size, not the rest


async def test_giving_up_after_the_retries(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    factory.cut_after = [10, 10, 10]
    with pytest.raises(DownloadInterrupted):
        await get(client, tmp_path / "a.iso", Options(retries=1, retry_delay=0))
    assert 10 <= part_path(tmp_path / "a.iso").stat().st_size <= 20


async def test_a_server_ignoring_the_range_restarts_from_zero(
    client: AsyncClient, factory: FakeFactory, tmp_path: Path
) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(b"garbage that must not survive")
    factory.ignore_range = True
    result = await get(client, dest)
    assert dest.read_bytes() == ISO
    assert getattr(result, "resumed_from", None) == 0
    assert ranges(factory) == [f"bytes={len(b'garbage that must not survive')}-"]


async def test_a_changed_asset_comes_back_whole(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(b"old bytes")
    etag_path(dest).write_text('"sha256:' + "0" * 64 + '"')  # If-Range no longer matches: the server sends 200
    await get(client, dest)
    assert dest.read_bytes() == ISO


async def test_a_206_for_the_wrong_offset_is_dropped(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(ISO[:1000])
    factory.shift_range = 7
    await get(client, dest)
    assert dest.read_bytes() == ISO
    assert ranges(factory) == ["bytes=1000-", None]  # dropped, then fetched whole


async def test_a_complete_part_is_finished_on_416(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(ISO)
    etag_path(dest).write_text(f'"sha256:{ISO_SHA}"')
    result = await get(client, dest)
    assert dest.read_bytes() == ISO and getattr(result, "resumed_from", None) == len(ISO)


async def test_a_part_longer_than_the_asset_starts_over(
    client: AsyncClient, factory: FakeFactory, tmp_path: Path
) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(ISO + b"extra")
    await get(client, dest)
    assert dest.read_bytes() == ISO


async def test_a_spliced_file_fails_the_digest_check(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    dest = tmp_path / "a.iso"
    part_path(dest).write_bytes(b"X" * 1000)  # wrong bytes, and no validator to send along
    with pytest.raises(IntegrityError, match="hash to sha256:"):
        await get(client, dest)
    assert not part_path(dest).exists() and not dest.exists()
    await get(client, dest)  # the next attempt starts clean
    assert dest.read_bytes() == ISO


async def test_without_etag_a_resume_still_completes(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    factory.etag = False
    factory.cut_after = [4096]
    dest = tmp_path / "a.iso"
    with pytest.raises(DownloadInterrupted):
        await get(client, dest)
    assert not etag_path(dest).exists()
    await get(client, dest)
    assert dest.read_bytes() == ISO


async def test_rate_limit_paces_the_body(client: AsyncClient, factory: FakeFactory, tmp_path: Path) -> None:
    import time

    factory.assets["kernel-amd64"] = b"k" * 40_000
    start = time.monotonic()
    await client.download(SCHEMATIC_ID, "v1.12.1", "kernel-amd64", tmp_path / "k", Options(rate_limit=100_000))
    assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize(
    "value", [None, "", "bytes 5-4/10", "bytes 0-10/10", "bytes */10", "items 0-1/2", "bytes 0-1/x"]
)
def test_unusable_content_ranges(value: str | None) -> None:
    with pytest.raises(IntegrityError):
        parse_content_range(value)


def test_content_range() -> None:
    assert parse_content_range("bytes 10-19/20") == (10, 19, 20)

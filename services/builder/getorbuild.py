"""Get or build one asset: cache lookup, one build per key, a concurrency limit, progress for everyone.

Mirrors the reference's `Builder.Build` (STYLE §4): cache hit → done. Miss → single flight on the key;
the leader builds on a task of its own (a waiter that goes away does not cancel the build), behind a
semaphore, in a private temp dir, with a timeout; the output is published to the cache only when the
build succeeded, and every waiter gets the same result or the same error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from services.builder.progress import Progress, ProgressFeed
from services.shared.errors import NO_SPACE_ERRNOS, InsufficientStorage, Internal
from services.shared.tools import ToolFailed

log = logging.getLogger(__name__)

BUCKETS = (1, 10, 60, 180, 600)
# The reference's asset metrics and labels (factory spec §14), then ours: joins, running and waiting builds.
ASSET_LABELS = ["talos_version", "output_kind", "arch"]
BUILT = Counter("image_factory_assets_built_total", "Assets built", ASSET_LABELS)
BUILT_BYTES = Counter("image_factory_assets_built_bytes_total", "Bytes of assets built", ASSET_LABELS)
CACHED = Counter("image_factory_assets_delivered_cached_total", "Assets served from the cache", ASSET_LABELS)
CACHED_BYTES = Counter("image_factory_assets_cached_bytes_total", "Bytes of assets served from the cache", ASSET_LABELS)
CACHED_ERRORS = Counter("image_factory_assets_cached_errors_total", "Cache lookups that failed", ASSET_LABELS)
WAITING = Histogram(
    "image_factory_assets_concurrency_latency_seconds", "Time waiting for a build slot", buckets=BUCKETS
)
BUILDING = Histogram("image_factory_assets_build_latency_seconds", "Time to build an asset", buckets=BUCKETS)
JOINS = Counter(
    "image_factory_assets_build_joins_total", "Requests that joined a build already under way", ["output_kind"]
)
RUNNING = Gauge("image_factory_assets_builds_running", "Builds holding a build slot")
QUEUED = Gauge("image_factory_assets_builds_waiting", "Builds waiting for a build slot (builder.max_concurrency)")
# A full scratch volume, as the kernel reports it to us and as tools print it (strerror, LC_ALL=C.UTF-8).
NO_SPACE_TEXTS = (b"No space left on device", b"Disk quota exceeded")


@dataclass(frozen=True)
class StoredAsset:
    key: str
    size: int
    digest: str
    media_type: str
    file_name: str
    created_unix: int


class AssetCache(Protocol):
    async def stat(self, key: str) -> StoredAsset | None: ...

    async def put(self, key: str, media_type: str, file_name: str, path: Path) -> StoredAsset: ...


BuildFn = Callable[[Path, ProgressFeed], Awaitable[Path]]


@dataclass(frozen=True)
class AssetRequest:
    key: str
    kind: str  # output kind, for metrics
    media_type: str
    file_name: str
    build: BuildFn
    version: str = ""  # Talos version and arch, for metrics
    arch: str = ""

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.version, self.kind, self.arch)


@dataclass
class _Flight:
    feed: ProgressFeed
    task: asyncio.Task[StoredAsset]


class AssetBuilder:
    def __init__(self, cache: AssetCache, work_root: Path, *, max_concurrency: int, timeout: float) -> None:
        self._cache = cache
        self._work_root = work_root
        self._slots = asyncio.Semaphore(max_concurrency)
        self._timeout = timeout
        self._flights: dict[str, _Flight] = {}

    def prepare(self) -> None:
        """Drop the work dirs of builds a crash interrupted; nothing of them was ever published."""
        shutil.rmtree(self._work_root, ignore_errors=True)
        # The root itself stays when it is a mount point (a scratch volume of its own).
        self._work_root.mkdir(parents=True, exist_ok=True)

    @property
    def building(self) -> int:
        return len(self._flights)

    async def ensure(self, request: AssetRequest) -> AsyncIterator[Progress | StoredAsset]:
        """Progress events, then the stored asset (or the build's error)."""
        if request.key not in self._flights:
            try:
                hit = await self._cache.stat(request.key)
            except Exception:
                CACHED_ERRORS.labels(*request.labels).inc()
                raise
            if hit is not None:
                CACHED.labels(*request.labels).inc()
                CACHED_BYTES.labels(*request.labels).inc(hit.size)
                yield hit
                return
        flight = self._flights.get(request.key)
        if flight is not None:
            JOINS.labels(request.kind).inc()
        else:
            feed = ProgressFeed()
            flight = _Flight(feed, asyncio.create_task(self._build(request, feed)))
            self._flights[request.key] = flight
            flight.task.add_done_callback(lambda _: self._flights.pop(request.key, None))
        queue = flight.feed.subscribe()
        try:
            while (event := await queue.get()) is not None:
                yield event
            yield await asyncio.shield(flight.task)
        finally:
            flight.feed.unsubscribe(queue)

    async def _build(self, request: AssetRequest, feed: ProgressFeed) -> StoredAsset:
        try:
            feed.publish("queued", f"waiting for a build slot for {request.file_name}")
            waited = time.monotonic()
            with QUEUED.track_inprogress():
                await self._slots.acquire()
            RUNNING.inc()
            try:
                WAITING.observe(time.monotonic() - waited)
                started = time.monotonic()
                with _full_disk_is_insufficient_storage(request.file_name):
                    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="build-", dir=self._work_root))
                try:
                    try:
                        with _full_disk_is_insufficient_storage(request.file_name):
                            output = await asyncio.wait_for(request.build(work, feed), self._timeout)
                    except TimeoutError:
                        raise Internal(f"building {request.file_name} timed out after {self._timeout:g} s") from None
                    async with feed.step("publish", f"storing {request.file_name} in the cache"):
                        stored = await self._cache.put(request.key, request.media_type, request.file_name, output)
                finally:
                    await asyncio.to_thread(shutil.rmtree, work, True)
                BUILDING.observe(time.monotonic() - started)
            finally:
                RUNNING.dec()
                self._slots.release()
            BUILT.labels(*request.labels).inc()
            BUILT_BYTES.labels(*request.labels).inc(stored.size)
            feed.publish("done", f"{request.file_name} is ready", 1.0)
            return stored
        finally:
            feed.close()


@contextlib.contextmanager
def _full_disk_is_insufficient_storage(file_name: str) -> Iterator[None]:
    """A build that ran out of scratch space failed for a reason of ours, not of the request: say so.

    Other OS errors and tool failures stay what they are (bugs or broken inputs: INTERNAL).
    """
    try:
        yield
    except (OSError, ToolFailed) as exc:
        if isinstance(exc, OSError) and exc.errno not in NO_SPACE_ERRNOS:
            raise
        if isinstance(exc, ToolFailed) and not any(text in exc.stderr_tail for text in NO_SPACE_TEXTS):
            raise
        log.warning("the build volume is full", extra={"file_name": file_name, "error": str(exc)})
        raise InsufficientStorage(f"building {file_name} failed: no space left on the build volume") from None

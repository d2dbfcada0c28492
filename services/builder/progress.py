"""Build progress: named, timed steps that are logged, traced, and streamed to every waiter."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from opentelemetry import trace

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class Progress:
    step: str
    message: str
    fraction: float = -1.0
    elapsed_seconds: float = 0.0


@dataclass
class ProgressFeed:
    """Fan-out of progress events to any number of subscribers (late ones get the history)."""

    started: float = field(default_factory=time.monotonic)
    history: list[Progress] = field(default_factory=list)
    closed: bool = False
    _queues: list[asyncio.Queue[Progress | None]] = field(default_factory=list)

    def publish(self, step: str, message: str, fraction: float = -1.0) -> None:
        event = Progress(step, message, fraction, round(time.monotonic() - self.started, 3))
        self.history.append(event)
        for queue in self._queues:
            queue.put_nowait(event)

    def close(self) -> None:
        self.closed = True
        for queue in self._queues:
            queue.put_nowait(None)

    def subscribe(self) -> asyncio.Queue[Progress | None]:
        queue: asyncio.Queue[Progress | None] = asyncio.Queue()
        for event in self.history:
            queue.put_nowait(event)
        if self.closed:  # joined a flight that just ended: history, then the end
            queue.put_nowait(None)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Progress | None]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    @asynccontextmanager
    async def step(self, name: str, message: str, **attributes: str) -> AsyncIterator[None]:
        """A build step: one progress event, one span, one log line with its duration (STYLE §4)."""
        self.publish(name, message)
        started = time.monotonic()
        with tracer.start_as_current_span(f"build {name}", attributes=attributes):
            try:
                yield
            except BaseException:
                log.warning("build step failed", extra={"step": name, "seconds": round(time.monotonic() - started, 3)})
                raise
        log.info("build step done", extra={"step": name, "seconds": round(time.monotonic() - started, 3), **attributes})

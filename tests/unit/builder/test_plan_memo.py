"""Plans are reused for a while (cached downloads skip re-planning); failures never are."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.builder import planning
from services.builder.planning import Planner
from services.shared.errors import NotFound


class CountingPlanner(Planner):
    def __init__(self) -> None:  # no collaborators: `_plan` is replaced
        self._plans = OrderedDict()
        self.fresh = 0
        self.fail = False

    async def _plan(self, schematic_id: str, version_text: str, path: str) -> tuple[Any, tuple[str, ...]]:
        self.fresh += 1
        if self.fail:
            raise NotFound(f'schematic ID "{schematic_id}" not found')
        return (schematic_id, version_text, path, self.fresh), ("siderolabs/memo-test-ext",)


def hits() -> float:
    return (
        REGISTRY.get_sample_value(
            "image_factory_profile_system_extension_hits_total", {"extension": "siderolabs/memo-test-ext"}
        )
        or 0.0
    )


async def test_a_plan_is_reused_within_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("services.builder.planning.time.monotonic", lambda: now[0])
    planner = CountingPlanner()
    before = hits()
    first = await planner.plan("s", "v1.12.1", "metal-amd64.iso")
    now[0] += planning.PLAN_TTL_SECONDS - 1
    assert await planner.plan("s", "v1.12.1", "metal-amd64.iso") is first
    assert planner.fresh == 1
    assert hits() == before + 2  # counted per request, reused or not
    assert await planner.plan("s", "v1.12.1", "metal-arm64.iso") is not first  # another request
    now[0] += 2
    assert await planner.plan("s", "v1.12.1", "metal-amd64.iso") != first  # expired: planned again
    assert planner.fresh == 3


async def test_failures_are_not_reused() -> None:
    planner = CountingPlanner()
    planner.fail = True
    for _ in range(2):
        with pytest.raises(NotFound):
            await planner.plan("missing", "v1.12.1", "metal-amd64.iso")
    assert planner.fresh == 2


async def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planning, "PLAN_MEMO_SIZE", 2)
    planner = CountingPlanner()
    for path in ("a", "b", "c"):
        await planner.plan("s", "v1", path)
    await planner.plan("s", "v1", "a")  # the oldest was dropped
    assert planner.fresh == 4

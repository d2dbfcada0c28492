"""The local supervisor restarts dead processes with backoff and gives up on a crash loop."""

from __future__ import annotations

from services.mesh.supervisor import RestartPolicy


def test_backoff_doubles_and_is_capped() -> None:
    policy = RestartPolicy(max_restarts=10, window=1000, base_delay=0.5, max_delay=3)
    assert [policy.delay("builder", float(t)) for t in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_a_crash_loop_gives_up_but_old_deaths_are_forgotten() -> None:
    policy = RestartPolicy(max_restarts=2, window=60, base_delay=1, max_delay=10)
    assert policy.delay("cache", 0) == 1
    assert policy.delay("cache", 10) == 2
    assert policy.delay("cache", 20) is None  # the third death within a minute
    fresh = RestartPolicy(max_restarts=2, window=60, base_delay=1, max_delay=10)
    assert [fresh.delay("cache", t) for t in (0, 100, 200)] == [1, 1, 1]  # far apart: each a first


def test_processes_are_counted_apart() -> None:
    policy = RestartPolicy(max_restarts=1, window=60)
    assert policy.delay("builder", 0) is not None
    assert policy.delay("catalog", 1) is not None
    assert policy.delay("builder", 2) is None

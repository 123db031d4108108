"""The scheduler alone: order, parallelism, failure rules."""

from __future__ import annotations

import threading
import time

from gitcache.engine import StepResult
from gitcache.scheduler import schedule


def _run(needs: dict[str, tuple[str, ...]], jobs: int, fail: set[str], keep_going: bool = False):  # type: ignore[no-untyped-def]
    lock = threading.Lock()
    started: list[str] = []
    active = 0
    peak = 0

    def run_one(name: str) -> StepResult:
        nonlocal active, peak
        with lock:
            started.append(name)
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return StepResult(name, "failed" if name in fail else "ran")

    results = schedule(
        list(needs),
        needs,
        run_one,
        lambda _r: None,
        lambda name, why: StepResult(name, "pending", detail=why),
        jobs,
        keep_going,
    )
    return results, started, peak


def test_serial_runs_in_order() -> None:
    results, started, peak = _run({"a": (), "b": ("a",), "c": ()}, 1, set())
    assert started == ["a", "b", "c"] and peak == 1
    assert [r.outcome for r in results] == ["ran"] * 3


def test_parallel_respects_needs_and_limit() -> None:
    needs = {"a": (), "b": (), "c": (), "d": ("a", "b")}
    results, started, peak = _run(needs, 2, set())
    assert peak == 2
    assert started.index("d") > max(started.index("a"), started.index("b"))
    assert [r.step for r in results] == ["a", "b", "c", "d"]


def test_failure_blocks_dependants_and_stops_new_launches() -> None:
    needs = {"a": (), "b": ("a",), "c": (), "d": ()}
    results, started, _ = _run(needs, 1, {"a"})
    assert started == ["a"]
    assert [(r.outcome, r.detail) for r in results[1:]] == [
        ("pending", "a step it needs did not succeed"),
        ("pending", "stopped after a failure"),
        ("pending", "stopped after a failure"),
    ]


def test_keep_going_skips_only_dependants() -> None:
    needs = {"a": (), "b": ("a",), "c": ("b",), "d": ()}
    results, started, _ = _run(needs, 2, {"a"}, keep_going=True)
    assert sorted(started) == ["a", "d"]
    assert [r.outcome for r in results] == ["failed", "pending", "pending", "ran"]


def test_a_unit_fans_out_into_items_that_its_users_wait_for() -> None:
    needs: dict[str, tuple[str, ...]] = {"a": (), "f": ("a",), "r": ("f",)}
    started: list[str] = []
    lock = threading.Lock()

    def run_one(name: str) -> StepResult:
        with lock:
            started.append(name)
        time.sleep(0.01)
        return StepResult(name, "failed" if name == "f[2]" else "ran")

    def fan_out(name: str) -> list[str] | None:
        return ["f[1]", "f[2]", "f[3]"] if name == "f" else None

    results = schedule(
        list(needs),
        needs,
        run_one,
        lambda _r: None,
        lambda name, why: StepResult(name, "pending", detail=why),
        2,
        True,
        fan_out=fan_out,
    )
    assert started[0] == "a" and sorted(started[1:]) == ["f[1]", "f[2]", "f[3]"]
    assert [(r.step, r.outcome) for r in results] == [
        ("a", "ran"),
        ("f[1]", "ran"),
        ("f[2]", "failed"),
        ("f[3]", "ran"),
        ("r", "pending"),
    ]
    assert results[-1].detail == "a step it needs did not succeed"


def test_a_long_chain_after_a_failure_is_pending_without_recursion() -> None:
    needs = {f"s{i}": ((f"s{i - 1}",) if i else ()) for i in range(5000)}
    results, started, _ = _run(needs, 1, {"s0"})
    assert started == ["s0"]
    assert {r.outcome for r in results[1:]} == {"pending"}

"""The scheduler alone: order, parallelism, failure rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from gitcache.engine import StepResult
from gitcache.scheduler import command_starting, hand_off, schedule


def _schedule(  # type: ignore[no-untyped-def]
    needs: Mapping[str, Sequence[str]], run_one, jobs: int, keep_going: bool, **options
) -> list[StepResult]:
    """schedule() with results reported nowhere and blocked units made pending."""
    return schedule(
        list(needs),
        needs,
        run_one,
        lambda _r: None,
        lambda name, why: StepResult(name, "pending", detail=why),
        jobs,
        keep_going,
        **options,
    )


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

    results = _schedule(needs, run_one, jobs, keep_going)
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

    results = _schedule(needs, run_one, 2, True, fan_out=fan_out)
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


def _pipeline(
    needs: dict[str, tuple[str, ...]], fail_before_handoff: set[str], keep_going: bool = False
) -> tuple[list[StepResult], list[str]]:
    """Units whose names start with `i` are items of one sweep (they may overlap); each
    logs its command's start and end, its hand-off and its record."""
    lock = threading.Lock()
    log: list[str] = []
    commands = 0

    def note(event: str) -> None:
        with lock:
            log.append(event)

    def run_one(name: str) -> StepResult:
        nonlocal commands
        command_starting()
        with lock:
            commands += 1
            assert commands == 1, "two commands at once"
        note(f"{name} command")
        time.sleep(0.02)
        with lock:
            commands -= 1
        if name in fail_before_handoff:
            return StepResult(name, "failed")
        hand_off()
        time.sleep(0.02)  # writing the record takes a while
        note(f"{name} record")
        return StepResult(name, "ran")

    def follows(first: str, then: str) -> bool:
        return first.startswith("i") and then.startswith("i")

    return _schedule(needs, run_one, 1, keep_going, follows=follows), log


def test_pipeline_records_an_item_while_the_next_command_runs() -> None:
    needs: dict[str, tuple[str, ...]] = {"i1": (), "i2": (), "i3": (), "x": ("i1", "i2", "i3")}
    results, log = _pipeline(needs, set())
    assert [r.outcome for r in results] == ["ran"] * 4
    # Commands one at a time, in order; an item records once the next one's command started.
    commands = [e for e in log if e.endswith("command")]
    assert commands == ["i1 command", "i2 command", "i3 command", "x command"]
    assert log.index("i1 record") > log.index("i2 command")
    assert log.index("i2 record") > log.index("i3 command")
    # x is no item and needs them all: it starts once every record is written.
    assert log.index("x command") > max(log.index(f"i{n} record") for n in (1, 2, 3))


def test_pipeline_does_not_overlap_other_units() -> None:
    results, log = _pipeline({"i1": (), "a": (), "i2": ()}, set())
    assert [r.outcome for r in results] == ["ran"] * 3
    assert log == ["i1 command", "i1 record", "a command", "a record", "i2 command", "i2 record"]


def test_pipeline_failure_before_handoff_starts_nothing_more() -> None:
    results, log = _pipeline({"i1": (), "i2": (), "i3": ()}, {"i2"})
    assert log == ["i1 command", "i2 command", "i1 record"]
    assert [(r.step, r.outcome) for r in results] == [
        ("i1", "ran"),
        ("i2", "failed"),
        ("i3", "pending"),
    ]


def test_pipeline_keep_going_runs_the_rest() -> None:
    results, log = _pipeline({"i1": (), "i2": (), "i3": ()}, {"i2"}, keep_going=True)
    assert [e for e in log if e.endswith("command")] == ["i1 command", "i2 command", "i3 command"]
    assert [r.outcome for r in results] == ["ran", "failed", "ran"]


def _where(order: list[str]) -> dict[str, bool]:
    """Pipelined, units named hit* are up to date, the others run a command: which ran
    on the calling thread."""
    where: dict[str, bool] = {}

    def run_one(name: str) -> StepResult:
        where[name] = threading.current_thread() is threading.main_thread()
        if name.startswith("hit"):
            return StepResult(name, "up to date")
        command_starting()
        hand_off()
        return StepResult(name, "ran")

    results = _schedule({name: () for name in order}, run_one, 1, False, follows=lambda *_: True)
    assert all(r.outcome in ("ran", "up to date") for r in results)
    return where


def test_pipeline_runs_hits_on_the_calling_thread() -> None:
    """A thread per unit would cost a no-op more than the overlap saves: after a unit
    that ran no command, with nothing else running, the next runs inline."""
    assert _where(["i0", "hit1", "hit2", "hit3"]) == {
        "i0": False,  # the first unit may run: on the pool
        "hit1": False,  # started while i0 wrote its record
        "hit2": True,
        "hit3": True,
    }


def test_pipeline_runs_units_after_one_that_ran_on_the_pool() -> None:
    where = _where(["i1", "i2", "i3"])
    assert not any(where.values())

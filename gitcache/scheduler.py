"""Running steps in dependency order, several at a time (`gitcache run -j N`).

Like `make -j`: a step starts once every step it needs has succeeded; after a
failure no new step starts (unless keep-going) while running ones finish; steps
that need a failed one are left pending. With one job everything happens on the
calling thread. A signal (Ctrl-C, SIGTERM, SIGHUP) stops the commands still running
(processes.py) and no step that did not finish writes a record.

A unit may fan out when it is reached (a `foreach` over another step's outputs,
docs/sweeps.md): its items then run in its place, needing what it needed, and the
units that need it wait for all of them. Bookkeeping is by counters, so a sweep of
thousands of items costs a constant per item, not a scan of everything waiting.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from gitcache.errors import Interrupted
from gitcache.processes import Terminated, stop_signal, stopped_by

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from gitcache.engine import StepResult

BAD_OUTCOMES = frozenset({"failed", "mismatch", "pending"})
BLOCKED = "a step it needs did not succeed"
STOPPED = "stopped after a failure"
_SIGNAL_LATENCY = 0.1  # seconds

# Asked when a unit is about to start: None (an ordinary unit), the keys of the
# items that run in its place, or its result when it cannot be expanded.
FanOut = Callable[[str], "Sequence[str] | StepResult | None"]


def schedule(
    order: Sequence[str],
    needs: Mapping[str, Sequence[str]],
    run_one: Callable[[str], StepResult],
    on_done: Callable[[StepResult], None],
    pending: Callable[[str, str], StepResult],
    jobs: int,
    keep_going: bool,
    on_interrupt: Callable[[int], None] = lambda _signum: None,
    fan_out: FanOut | None = None,
) -> list[StepResult]:
    """Run every unit of `order` (a topological order); return results in that order,
    a fanned-out unit replaced by its items' results."""
    position = {name: (i, 0) for i, name in enumerate(order)}
    left = {name: 0 for name in order}  # needs not finished yet
    users: dict[str, list[str]] = {}
    for name in order:
        for dep in needs[name]:
            if dep in left:
                left[name] += 1
                users.setdefault(dep, []).append(name)
    blocked: set[str] = set()
    ready = [position[name] + (name,) for name in order if left[name] == 0]
    heapq.heapify(ready)
    done: dict[str, StepResult] = {}
    children: dict[str, list[str]] = {}  # fanned-out unit -> its items
    group: dict[str, str] = {}  # item -> the unit it fanned out from
    open_items: dict[str, int] = {}  # fanned-out unit -> items not finished
    group_bad: set[str] = set()
    running: dict[Future[StepResult], str] = {}
    stopped = False

    def release(name: str, bad: bool) -> None:
        """`name` is finished: its users may become ready (a blocked one is taken off
        the heap as pending, without running)."""
        for user in users.get(name, ()):
            if bad:
                blocked.add(user)
            left[user] -= 1
            if left[user] == 0:
                heapq.heappush(ready, position[user] + (user,))

    def finish(result: StepResult) -> None:
        nonlocal stopped
        name = result.step
        done[name] = result
        bad = result.outcome in BAD_OUTCOMES
        if result.outcome != "pending":
            on_done(result)
            if bad and not keep_going:
                stopped = True
        parent = group.get(name)
        if parent is None:
            release(name, bad)
            return
        if bad:
            group_bad.add(parent)
        open_items[parent] -= 1
        if open_items[parent] == 0:
            release(parent, parent in group_bad)

    def start(name: str) -> bool:
        """Start `name` (or its items); False when it fanned out into nothing to start."""
        items = fan_out(name) if fan_out is not None and name not in group else None
        if items is None:
            if pool is None:
                finish(run_one(name))
            else:
                running[pool.submit(run_one, name)] = name
            return True
        if not isinstance(items, Sequence):  # it could not fan out: its own result
            finish(items)
            return True
        children[name] = list(items)
        open_items[name] = len(children[name])
        for sub, item in enumerate(children[name]):
            group[item] = name
            position[item] = (position[name][0], sub + 1)
            heapq.heappush(ready, position[item] + (item,))
        if not children[name]:
            release(name, False)
        return False

    pool: ThreadPoolExecutor | None = None
    if jobs > 1:  # imported here: one job (the usual run) needs no pool
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="gitcache-step")
    try:
        while ready or running:
            while ready and not stopped and len(running) < jobs:
                *_pos, name = heapq.heappop(ready)
                if name in blocked:
                    finish(pending(name, BLOCKED))
                else:
                    start(name)
            if stopped:
                ready.clear()
            if not running:
                continue
            # With a timeout: a signal the kernel gave to a worker thread (blocked in
            # waitpid) does not wake this one, whose Python handler must act on it.
            from concurrent.futures import FIRST_COMPLETED, wait

            finished, _ = wait(running, timeout=_SIGNAL_LATENCY, return_when=FIRST_COMPLETED)
            for future in finished:
                del running[future]
                finish(future.result())
    except (KeyboardInterrupt, Terminated) as exc:
        # on_interrupt stops the running commands and makes sure that none of them
        # writes a record even if its command still succeeds.
        signum = stop_signal(exc)
        on_interrupt(signum)
        raise Interrupted(
            f"{stopped_by(signum)}; steps that did not finish wrote no record", signum=signum
        ) from None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    results: list[StepResult] = []
    for name in order:  # what never started, in order: its needs are decided by now
        if name not in done and name not in children:
            bad = any(
                (d in done and done[d].outcome in BAD_OUTCOMES) or d in group_bad
                for d in needs[name]
            )
            done[name] = pending(name, BLOCKED if bad else STOPPED)
        for item in children.get(name, [name]):
            if item not in done:
                done[item] = pending(item, STOPPED)
            results.append(done[item])
    return results

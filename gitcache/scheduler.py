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

With one job, consecutive items of a sweep overlap by one phase (`follows`): once an
item's command has ended and its outputs are stored, it hands off (`hand_off`), the
next item is evaluated and its command started, and only then does the first write
its record (git objects and refs, nothing read from the worktree). Commands still run
one at a time, in order, and each item is evaluated after every earlier command
ended, as without the overlap; what it saves is the record's time, once per item.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from gitcache.errors import Interrupted
from gitcache.processes import Terminated, stop_signal, stopped_by

if TYPE_CHECKING:
    from gitcache.engine import StepResult

BAD_OUTCOMES = frozenset({"failed", "mismatch", "pending"})
BLOCKED = "a step it needs did not succeed"
STOPPED = "stopped after a failure"
_SIGNAL_LATENCY = 0.1  # seconds
_HANDOFF_WAIT = 2.0  # seconds an item waits for the next one's command to start

# Asked when a unit is about to start: None (an ordinary unit), the keys of the
# items that run in its place, or its result when it cannot be expanded.
FanOut = Callable[[str], "Sequence[str] | StepResult | None"]
# Whether unit `b` may start while unit `a`, handed off, writes its record.
Follows = Callable[[str, str], bool]


class Baton:
    """One pipelined unit's turn (see the module's docstring)."""

    def __init__(self, on_handoff: Callable[[], None]) -> None:
        self._on_handoff = on_handoff
        self._go = threading.Event()  # this unit may write its record now
        self.successor: Baton | None = None  # the unit started after it handed off
        self._predecessors: list[Baton] = []  # units waiting for this one to start

    def handoff(self) -> None:
        """Let the scheduler start the next unit, and wait until its command started
        (or it ended without one, or there is none)."""
        self._on_handoff()
        # Bounded: were the next unit ever to wait for something this one holds, this
        # one records anyway (the overlap is an optimisation, never a condition).
        self._go.wait(_HANDOFF_WAIT)

    def follow(self, predecessor: Baton) -> None:
        predecessor.successor = self
        self._predecessors.append(predecessor)

    def started(self) -> None:
        """This unit's command started (or it finished): its predecessors may record."""
        for predecessor in self._predecessors:
            predecessor.release()
        self._predecessors.clear()

    def release(self) -> None:
        self._go.set()


_current = threading.local()  # the Baton of the unit this thread runs, if pipelined


def hand_off() -> None:
    """Called by the unit this thread runs once its command ended and its outputs are
    stored, with no lock held: returns when it may write its record."""
    baton: Baton | None = getattr(_current, "baton", None)
    if baton is not None:
        baton.handoff()


def pipelined() -> bool:
    """Whether the unit this thread runs may hand off (one job; whether the next unit
    then starts is for `follows` to say)."""
    return getattr(_current, "baton", None) is not None


def command_starting() -> None:
    """Called by the unit this thread runs just before its command starts."""
    baton: Baton | None = getattr(_current, "baton", None)
    if baton is not None:
        baton.started()


def _run_with(baton: Baton, run_one: Callable[[str], StepResult], name: str) -> StepResult:
    _current.baton = baton
    try:
        return run_one(name)
    finally:
        _current.baton = None
        baton.started()  # it never started a command: its predecessors go on anyway
        baton.release()  # it never handed off (or did): nothing waits for its successor


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
    follows: Follows | None = None,
) -> list[StepResult]:
    """Run every unit of `order` (a topological order); return results in that order,
    a fanned-out unit replaced by its items' results. `follows`, with one job: which
    units may overlap (the module's docstring)."""
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
    pipelined = jobs == 1 and follows is not None
    batons: dict[str, Baton] = {}  # pipelined units running
    handed: dict[str, Baton] = {}  # of those, the ones writing their record
    # Finished units and hand-offs, from the worker threads: the loop below waits here.
    events: queue.SimpleQueue[tuple[Future[StepResult] | None, str]] = queue.SimpleQueue()
    stopped = False
    ran_last = True  # the last unit to finish ran its command

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
        nonlocal stopped, ran_last
        name = result.step
        done[name] = result
        ran_last = result.outcome == "ran"
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
            # Pipelined, a unit after one that ran no command (a hit, most likely too)
            # runs here, unless a unit runs its command: a thread would cost more than
            # the overlap saves on a no-op. What writes its record goes on meanwhile.
            if pool is None or (pipelined and not ran_last and len(running) == len(handed)):
                for baton in handed.values():
                    baton.release()
                finish(run_one(name))
                return True
            if pipelined:
                baton = Baton(lambda: events.put((None, name)))
                for predecessor in handed.values():
                    if predecessor.successor is None:
                        baton.follow(predecessor)
                batons[name] = baton
                future = pool.submit(_run_with, baton, run_one, name)
            else:
                future = pool.submit(run_one, name)
            running[future] = name
            future.add_done_callback(lambda done: events.put((done, name)))
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

    def may_start(name: str) -> bool:
        """Room for `name`: fewer than `jobs` units before their hand-off, and every unit
        writing its record lets it overlap."""
        if len(running) - len(handed) >= jobs:
            return False
        return not handed or all(follows is not None and follows(h, name) for h in handed)

    workers = jobs + 1 if pipelined else jobs  # one more: an item writing its record
    pool = (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gitcache-step")
        if workers > 1
        else None
    )
    try:
        while ready or running:
            while ready and not stopped and may_start(ready[0][-1]):
                *_pos, name = heapq.heappop(ready)
                if name in blocked:
                    finish(pending(name, BLOCKED))
                else:
                    start(name)
            if stopped:
                ready.clear()
            for baton in handed.values():
                if baton.successor is None:  # nothing started after it: it records now
                    baton.release()
            if not running:
                continue
            # With a timeout: a signal the kernel gave to a worker thread (blocked in
            # waitpid) does not wake this one, whose Python handler must act on it.
            try:
                future, name = events.get(timeout=_SIGNAL_LATENCY)
            except queue.Empty:
                continue
            if future is None:  # `name` handed off
                handed[name] = batons[name]
                continue
            del running[future]
            handed.pop(name, None)
            batons.pop(name, None)
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
        for baton in batons.values():  # nothing is started any more: no unit waits
            baton.release()
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

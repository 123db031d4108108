"""Running steps in dependency order, several at a time (`gitcache run -j N`).

Like `make -j`: a step starts once every step it needs has succeeded; after a
failure no new step starts (unless keep-going) while running ones finish; steps
that need a failed one are left pending. With one job everything happens on the
calling thread. A signal (Ctrl-C, SIGTERM, SIGHUP) stops the commands still running
(processes.py) and no step that did not finish writes a record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from gitcache.errors import Interrupted
from gitcache.processes import Terminated, stop_signal, stopped_by

if TYPE_CHECKING:
    from gitcache.engine import StepResult

BAD_OUTCOMES = frozenset({"failed", "mismatch", "pending"})
_SIGNAL_LATENCY = 0.1  # seconds


def _blocked(name: str, needs: Mapping[str, Sequence[str]], done: Mapping[str, StepResult]) -> bool:
    return any(d in done and done[d].outcome in BAD_OUTCOMES for d in needs[name])


def schedule(
    order: Sequence[str],
    needs: Mapping[str, Sequence[str]],
    run_one: Callable[[str], StepResult],
    on_done: Callable[[StepResult], None],
    pending: Callable[[str, str], StepResult],
    jobs: int,
    keep_going: bool,
    on_interrupt: Callable[[int], None] = lambda _signum: None,
) -> list[StepResult]:
    """Run every step of `order` (a topological order); return results in that order."""
    done: dict[str, StepResult] = {}
    waiting = list(order)
    running: dict[Future[StepResult], str] = {}
    stopped = False

    def finish(result: StepResult) -> None:
        nonlocal stopped
        done[result.step] = result
        on_done(result)
        if result.outcome in BAD_OUTCOMES and not keep_going:
            stopped = True

    pool = (
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="gitcache-step")
        if jobs > 1
        else None
    )
    try:
        while waiting or running:
            for name in list(waiting):
                if _blocked(name, needs, done):
                    waiting.remove(name)
                    done[name] = pending(name, "a step it needs did not succeed")
                elif stopped:
                    waiting.remove(name)
                    done[name] = pending(name, "stopped after a failure")
                elif all(d in done for d in needs[name]) and len(running) < jobs:
                    waiting.remove(name)
                    if pool is None:
                        finish(run_one(name))
                    else:
                        running[pool.submit(run_one, name)] = name
            if not running:
                continue
            # With a timeout: a signal the kernel gave to a worker thread (blocked in
            # waitpid) does not wake this one, whose Python handler must act on it.
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
    return [done[name] for name in order]

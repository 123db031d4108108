"""`gitcache run DIR/*.json -j N`: task files run in worker processes.

Each task is loaded in a worker (its step imported by module name, or from its file
for a script), skipped if its signature has a record, else run and recorded. A task
whose step's code changed since the file was saved is still run (with the code
there is now) and reported, so the user knows the result is not what the file's
signature promised.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal

from gitcache.errors import GitcacheError
from gitcache.processes import Children, forwarding_signals, stopping_children

Outcome = Literal["skipped", "ran", "failed"]


@dataclass(frozen=True)
class TaskOutcome:
    path: str
    step: str
    signature: str | None
    outcome: Outcome
    detail: str = ""
    code_changed: bool = False


def run_one(path: str, root: str, remote: str | None = None) -> TaskOutcome:
    """Run one task file (in a worker process, or in this one); `remote`: asked for
    the task's record on a local miss."""
    from gitcache.python.session import session_for
    from gitcache.python.tasks import code_digest, read_task_file

    os.chdir(root)
    step = "?"
    try:
        task, document = read_task_file(Path(path))
        step = task.step.name
        session = session_for(Path(root))
        if remote is not None:
            session.remote_name = remote
        with session.lock:
            call = task.step.sign_bound(session, task.arguments)
            recorded = session.store.lookup(call.signature, step=step) is not None
            fetched = (
                not recorded
                and session.remote_lookup is not None
                and session.remote_lookup(call.signature)
                and session.store.lookup(call.signature, step=step) is not None
            )
        changed = code_digest(call) != document.get("code")
        if recorded or fetched:
            detail = "fetched" if fetched else "recorded"
            return TaskOutcome(path, step, call.signature, "skipped", detail, changed)
        task.run()
        return TaskOutcome(path, step, call.signature, "ran", "", changed)
    except GitcacheError as exc:
        return TaskOutcome(path, step, None, "failed", exc.message)
    except Exception as exc:  # the step's own exception: reported, the other tasks go on
        return TaskOutcome(path, step, None, "failed", f"{type(exc).__name__}: {exc}")
    finally:
        from gitcache.python.session import forget_sessions

        forget_sessions()  # saves the stat cache and record index


def run_task_files(
    paths: Sequence[str],
    root: Path,
    jobs: int,
    report: Callable[[TaskOutcome], None],
    remote: str | None = None,
) -> list[TaskOutcome]:
    """Run task files, up to `jobs` at a time in worker processes; outcomes in order."""
    absolute = [str(Path(p).resolve()) for p in paths]
    for path in absolute:
        if not Path(path).is_file():
            from gitcache.errors import ConfigError

            raise ConfigError(f"task file {path} does not exist")
    if jobs <= 1:
        outcomes = []
        with forwarding_signals(Children()):  # SIGTERM, SIGHUP: unwind (no record)
            for path in absolute:
                outcome = run_one(path, str(root), remote)
                report(outcome)
                outcomes.append(outcome)
        return outcomes
    # spawn: each worker imports gitcache and the steps afresh (no forked git state).
    context = multiprocessing.get_context("spawn")
    done: dict[str, TaskOutcome] = {}
    # Workers stay in gitcache's process group (Ctrl-C reaches them); SIGTERM and SIGHUP
    # reach gitcache alone and are passed on to each (processes.stopping_children).
    with stopping_children() as children:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
        try:
            futures = [pool.submit(run_one, path, str(root), remote) for path in absolute]
            for process in multiprocessing.active_children():  # the workers, started now
                if process.pid is not None:
                    children.add(_Worker(process, process.pid))
            for future in as_completed(futures):
                outcome = future.result()
                report(outcome)
                done[outcome.path] = outcome
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the workers are stopped next
            raise
        pool.shutdown()
    return [done[p] for p in absolute]


class _Worker:
    """A worker process as processes.Children tracks one: its pid, and `poll`."""

    def __init__(self, process: BaseProcess, pid: int) -> None:
        self._process = process
        self.pid = pid

    def poll(self) -> int | None:
        return None if self._process.is_alive() else self._process.exitcode

"""Locks between gitcache processes, all released by the kernel when a process dies.

- Per-signature locks: two processes about to run one signature run it once.
- The objects lock: a reader/writer lock between everything that writes git objects
  before the refs that keep them, or relies on a record staying (a run, a Python
  step, a fetch, a rewrite mapping, `restore`, `remove --outputs`; shared) and what
  drops records (`gitcache gc`, `gitcache remove`; exclusive): `git gc --prune=now`
  deletes every unreachable object, so it must never run between a writer's first
  object and its ref transaction, and a record must not go while `remove --outputs`
  deletes the files it holds.

filelock and flock(2) are kernel locks: a crash or Ctrl-C never leaves a lock that
blocks the next run (no pid files).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

OBJECTS_LOCK = "objects.lock"  # under <state dir>/locks/


@contextmanager
def signature_lock(
    state_dir: Path, signature: str, on_wait: Callable[[str], None]
) -> Iterator[None]:
    # Imported here: filelock costs ~10 ms to import, and a Python step's hit, which
    # takes no signature lock, should not pay it.
    from filelock import FileLock, Timeout

    path = state_dir / "locks" / f"{signature}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        on_wait(f"waiting for lock on {path} (another gitcache is running this step)")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writing_objects(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the objects lock shared: no `gitcache gc --prune` until the block ends.

    Hold it from before the first object a caller writes (or the first record it
    reads, to restore from) until the refs that keep those objects exist. Many
    holders at once are fine (several runs, threads of one run, nested holders).
    """
    with _flock(
        state_dir,
        fcntl.LOCK_SH,
        on_wait,
        "waiting for lock on {path} (gitcache gc --prune is running)",
    ):
        yield


@contextmanager
def dropping_records(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the objects lock exclusive: no gitcache process is between objects and refs,
    or relying on a record; hold it from choosing records to drop to pruning them."""
    with _flock(
        state_dir,
        fcntl.LOCK_EX,
        on_wait,
        "waiting for lock on {path} (another gitcache is writing or using records)",
    ):
        yield


@contextmanager
def _flock(
    state_dir: Path, kind: int, on_wait: Callable[[str], None] | None, notice: str
) -> Iterator[None]:
    path = state_dir / "locks" / OBJECTS_LOCK
    # One open file description per holder: flock(2) locks belong to it, so threads
    # and nested holders each get their own and never release another's lock.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:  # the first lock in this repository
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(notice.format(path=path))
            fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)  # closing the last descriptor of the description releases the lock

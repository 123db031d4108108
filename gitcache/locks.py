"""Per-signature locks: two processes about to run one signature run it once.

filelock uses flock(2), which the kernel releases when a process dies, so a crash
or Ctrl-C never leaves a lock that blocks the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


@contextmanager
def signature_lock(
    state_dir: Path, signature: str, on_wait: Callable[[str], None]
) -> Iterator[None]:
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

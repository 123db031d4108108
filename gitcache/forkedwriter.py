"""A second process that writes part of a restore's many small files.

Making a small file costs system calls (open, write, fchmod, fstat, close: ~15 µs in
a tmpfs) and ~20 µs of Python around them. Two threads make 50,000 such files slower
than one (measured: 1.4 s against 1.0 s; every system call hands the GIL over), two
processes nearly twice as fast (0.55 s), which is why git's parallel checkout uses
worker processes too. So a restore of many small files forks once (worktree.py) and
the child writes a share of them, with the parent's own code: the record's blobs are
in the packs mapped before the fork, the journal's slots are a shared mapping, and
each file the child makes is noted in a shared result slot with the numbers of its
fstat, which the parent puts in the stat cache after waiting for it.

A file the child did not write (it found something at the path, the blob was not in
a pack, a write failed, or it was killed) is left to the parent, which writes it as
it would have anyway and so says what went wrong. The child never runs the parent's
clean-up: it ends with os._exit, whatever happens, and stops at once on a signal.
It is only forked by the gitcache command's own process (`allow`, called by the
CLI), and only while it has no other thread: a thread holding a lock at the fork
would leave it held in the child forever, and a Python program calling gitcache as a
library may run threads Python does not list (a BLAS pool, a TLS library's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import mmap

MIN_FILES: Final = 4096  # small files to restore that make a second process worth it
_RESULT: Final = struct.Struct("<q5q")  # written (1) or not (0); the stat cache's numbers
_WRITTEN: Final = 1
# Signals that stop the child as they stop any process, not through Python's handlers
# (which would raise in the parent's code, copied into the child).
_STOPPING: Final = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGPIPE")

# Writes item i of the child's share: the stat cache's numbers of the file it made,
# or None when it made none (the parent writes it). Raising stops the child.
WriteItem = Callable[[int], "list[int] | None"]


_allowed = False  # set by the gitcache command (`allow`), never by a library call


def allow() -> None:
    """This process is the gitcache command: it may fork a second writer."""
    global _allowed
    _allowed = True


def usable(count: int) -> bool:
    """Whether `count` small files are worth a second process, and one may be forked:
    the gitcache command, on Linux, two or more processors to run on, and no other
    thread in this process."""
    if not _allowed or count < MIN_FILES or not sys.platform.startswith("linux"):
        return False  # measured on Linux; elsewhere (macOS) a fork may not be safe
    if threading.current_thread() is not threading.main_thread():
        return False
    if threading.active_count() != 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) >= 2


class ForkedWriter:
    """One child process writing `count` items (`start`), waited for by `finish`."""

    def __init__(self, count: int) -> None:
        import mmap  # here: a command that restores nothing need not import it

        self.count = count
        # MAP_SHARED and anonymous: what the child writes here, the parent reads.
        self._results = mmap.mmap(-1, max(count, 1) * _RESULT.size)
        self._pid = 0

    def start(self, write: WriteItem) -> None:
        # The stopping signals held over the fork: one landing in between would run
        # the parent's handler in the child, outside `_child`'s os._exit.
        stopping = {getattr(signal, name) for name in _STOPPING if hasattr(signal, name)}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
        try:
            pid = os.fork()
            if pid == 0:
                _child(write, self.count, self._results)  # never returns
            self._pid = pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def finish(self) -> list[list[int] | None]:
        """Wait for the child; per item, the numbers of the file it wrote, or None."""
        self._wait()
        results: list[list[int] | None] = []
        for index in range(self.count):
            state, *numbers = _RESULT.unpack_from(self._results, index * _RESULT.size)
            results.append(numbers if state == _WRITTEN else None)
        self._results.close()
        return results

    def stop(self) -> None:
        """Kill the child and wait for it (the restore failed or was interrupted): the
        journal it shares is undone only once nothing writes any more."""
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            self._wait()
        if not self._results.closed:
            self._results.close()

    def _wait(self) -> None:
        if self._pid:
            with contextlib.suppress(ChildProcessError):  # (EINTR is retried: PEP 475)
                os.waitpid(self._pid, 0)
            self._pid = 0


def _child(write: WriteItem, count: int, results: mmap.mmap) -> None:
    status = 1
    try:
        for name in _STOPPING:
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for index in range(count):
            numbers = write(index)
            if numbers is not None:
                _RESULT.pack_into(results, index * _RESULT.size, _WRITTEN, *numbers)
        status = 0
    except BaseException:  # the items not written are the parent's to write
        pass
    finally:
        os._exit(status)

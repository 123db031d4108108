"""Scratch directories for a running step: `<state dir>/tmp/<pid>-<name>/`.

A step's logs are captured there until its record is written; the directory goes
when the step is done, whatever happened. A process that was killed (kill -9, a
crash, a power cut) cannot remove its own, so a run removes those of processes that
are gone before it starts: the owner's pid is not alive and the directory's lock is
not held. The lock (flock, held by the owner for the directory's lifetime) protects
an owner whose pid this process cannot see, e.g. in another container sharing the
repository.

Files written whole and renamed into place (the stat cache, the record index, ...)
are written first under a name that holds the writer's pid (`temp_prefix`); one left
by a killed process goes the same way (`clean_stale_files`, at the start of a run).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRATCH_DIR = "tmp"
_LOCK = ".lock"
# The temporary files of state written whole and renamed into place (`temp_prefix`).
TEMP_KINDS = ("statcache", "record-index", "removed", "latest")
_LEGACY_AGE_S = 3600  # such a file without a pid (older gitcache): stale after this


def temp_prefix(kind: str) -> str:
    """The prefix of a temporary file of `kind` (in TEMP_KINDS) this process writes:
    `.<kind>-<pid>-`, so that one a killed process left can be told from a live one's."""
    return f".{kind}-{os.getpid()}-"


def clean_stale_files(directory: Path) -> list[str]:
    """Remove the temporary files (`temp_prefix`) of processes that are gone; their names.

    A name without a pid (written by an older gitcache) goes once it is an hour old:
    it is renamed into place milliseconds after it is made.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    now = time.time()
    for entry in entries:
        kind = next((k for k in TEMP_KINDS if entry.name.startswith(f".{k}-")), None)
        if kind is None or not entry.is_file(follow_symlinks=False):
            continue
        pid_text, _, rest = entry.name[len(kind) + 2 :].partition("-")
        stale = False
        if pid_text.isdigit() and rest:
            stale = int(pid_text) != os.getpid() and not process_alive(int(pid_text))
        else:
            with contextlib.suppress(OSError):
                stale = now - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S
        if stale:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


@contextmanager
def scratch_dir(state_dir: Path, name: str) -> Iterator[Path]:
    """A directory for this process's `name` (unique among its scratch directories),
    removed with its content at exit."""
    path = state_dir / SCRATCH_DIR / f"{os.getpid()}-{name}"
    path.mkdir(parents=True, exist_ok=True)  # exists only if a dead process had our pid
    fd = os.open(path / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def clean_stale(state_dir: Path) -> list[str]:
    """Remove scratch directories whose owner is gone; the names removed."""
    try:
        entries = list(os.scandir(state_dir / SCRATCH_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return []  # the common case: nothing ever ran here, or nothing to look at
    removed = []
    for entry in entries:
        pid_text, _, _rest = entry.name.partition("-")
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or process_alive(int(pid_text)):
            continue
        with _unless_locked(Path(entry.path) / _LOCK) as free:
            if free:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def _unless_locked(lock: Path) -> Iterator[bool]:
    """True (holding the lock) unless a live process holds it; True if there is none."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # killed before it took the lock, or emptied already
        yield True
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)

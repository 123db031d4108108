"""Reading a worktree file as one blob while something else may be writing it.

A file read while it changes would give a blob id (or a stored blob) that matches
neither its old nor its new content, and libgit2 fails outright when a file shrinks
under it (`error reading file for hashing`). So a file is read, then stat'ed again:
if its size, times or inode moved meanwhile, it is read again (a few times, a little
longer apart each time), and then gitcache gives up with one line naming the file.
Only regular files are read (opened without blocking: a fifo would hang the read).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar

from gitcache.errors import UnreadableFile, disk_full, no_space
from gitcache.processes import start_quiet

BLOCK: Final = 1 << 20  # bytes read at a time
# The stat cache's file in a worktree's git dir `gitcache/` (statcache.py): here, so that
# prefetch.py finds it without importing the stat cache (and pygit2).
STAT_CACHE_FILE: Final = "statcache-v3"
AHEAD_BLOCK: Final = 8 << 20  # bytes read at a time by the thread hashing ahead: it
# takes the GIL back after each read and hash, and the importing thread holds it for up
# to the switch interval (5 ms) each time
TRIES: Final = 5
_PAUSE: Final = 0.02  # seconds before the second try; doubled for each further one

T = TypeVar("T")


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two stats describe the same, unchanged file (content-wise, as git sees it)."""
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino, a.st_dev) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
        b.st_ino,
        b.st_dev,
    )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _not_regular(name: str, mode: int) -> UnreadableFile:
    return UnreadableFile(
        f"{name} is {_kind(mode)}; gitcache reads only regular files and symlinks",
        hint="move it out of the step's inputs and outputs",
    )


def _changing(name: str) -> UnreadableFile:
    return UnreadableFile(
        f"{name} keeps changing while gitcache reads it",
        hint="wait until whatever writes it has finished (a step that writes it should "
        "declare it as an output, and steps that read it as an input)",
    )


def _vanished(name: str) -> UnreadableFile:
    return UnreadableFile(f"{name} disappeared while gitcache read it")


def _unreadable(name: str, exc: OSError) -> UnreadableFile:
    return UnreadableFile(f"cannot read {name}: {exc.strerror or exc}")


def _pause(attempt: int) -> None:
    time.sleep(_PAUSE * 2**attempt)


def hash_file(path: Path, name: str, follow: bool = True) -> tuple[str, os.stat_result]:
    """The git blob id of a regular file's bytes, and the stat those bytes belong to.

    With `follow`, a symlink counts as the file it points to; without, `path` must
    not be a symlink (its blob is its link text: read that with os.readlink). Raises
    UnreadableFile, naming `name`, when the file keeps changing, vanishes, or is not a
    regular file. A file hashed ahead (`hash_ahead`) is not read again while its stat
    is the one it was read with.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(TRIES):
        if attempt:
            _pause(attempt - 1)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise _vanished(name) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP and not follow:  # became a symlink since we looked
                continue
            raise _unreadable(name, exc) from None
        with open(fd, "rb", buffering=0) as handle:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise _not_regular(name, before.st_mode)
            oid = _hashed_ahead(before)
            if oid is None:
                oid, read = _hash_open(handle, before.st_size, BLOCK)
            else:
                read = before.st_size
        try:
            after = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            raise _vanished(name) from None
        if read == before.st_size and same_file(before, after):
            return oid, after
    raise _changing(name)


def _hash_open(handle: io.FileIO, size: int, block: int) -> tuple[str, int]:
    """(blob id, bytes read) of an open file said to hold `size` bytes."""
    digest = hashlib.sha1(b"blob %d\0" % size)
    read = 0
    buffer = bytearray(min(block, size + 1))  # small files: small buffer
    view = memoryview(buffer)
    while n := handle.readinto(buffer):
        digest.update(view[:n])
        read += n
    return digest.hexdigest(), read


class _Ahead:
    """A file hashed ahead: queued, taken back by hash_file, being read, or done."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.state = "queued"
        self.done = threading.Event()
        self.result: tuple[str, os.stat_result] | None = None  # blob id, stat read with


_ahead: dict[tuple[int, int], _Ahead] = {}  # (device, inode) -> what hashes it ahead
_ahead_lock = threading.Lock()


def hash_ahead(paths: Sequence[str], clock_dir: str) -> None:
    """Hash these regular files on a thread of their own (gitcache/prefetch.py), one
    after the other, for hash_file to take. A file whose mtime is not older than the
    file system's clock when the thread began (a clock file made in `clock_dir`) may
    be changing within one timestamp tick, so its id is not kept."""
    with _ahead_lock:
        queued: list[_Ahead] = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in _ahead:
                _ahead[key] = entry = _Ahead(path)
                queued.append(entry)
    if queued:
        thread = threading.Thread(
            target=_hash_queued, args=(queued, clock_dir), name="gitcache-hash-ahead", daemon=True
        )
        start_quiet(thread)


def _hash_queued(queued: Sequence[_Ahead], clock_dir: str) -> None:
    try:
        os.makedirs(clock_dir, exist_ok=True)
        fd, clock_file = tempfile.mkstemp(dir=clock_dir, prefix=".clock-")
        try:
            clock = os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            os.unlink(clock_file)
    except OSError:
        clock = None
    for entry in queued:
        with _ahead_lock:
            if entry.state != "queued":
                continue  # hash_file took it back
            entry.state = "reading"
        try:
            if clock is not None:
                entry.result = _hash_path(entry.path, clock)
        except Exception:  # hash_file then reads the file itself and says why
            entry.result = None
        finally:
            entry.done.set()


def _hash_path(path: str, clock: int) -> tuple[str, os.stat_result] | None:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    with open(os.open(path, flags), "rb", buffering=0) as handle:
        before = os.fstat(handle.fileno())
        if not stat.S_ISREG(before.st_mode) or before.st_mtime_ns >= clock:
            return None
        oid, read = _hash_open(handle, before.st_size, AHEAD_BLOCK)
        after = os.fstat(handle.fileno())
    return (oid, before) if read == before.st_size and same_file(before, after) else None


def _hashed_ahead(st: os.stat_result) -> str | None:
    """The blob id hashed ahead for the file of this stat, if any (waiting for the
    thread if it is reading it now); None: hash it here."""
    if not _ahead:  # nothing hashed ahead (nearly always): no lock to take
        return None
    with _ahead_lock:
        entry = _ahead.get((st.st_dev, st.st_ino))
        if entry is None:
            return None
        if entry.state == "queued":
            entry.state = "taken"
            del _ahead[(st.st_dev, st.st_ino)]
            return None
    entry.done.wait()
    with _ahead_lock:
        _ahead.pop((st.st_dev, st.st_ino), None)
    found = entry.result
    return found[0] if found is not None and same_file(found[1], st) else None


def read_stable(
    path: Path,
    name: str,
    read: Callable[[Path], T],
    follow: bool = False,
    read_link: Callable[[Path], T] | None = None,
    size_of: Callable[[T], int | None] | None = None,
) -> tuple[T, os.stat_result]:
    """`read(path)` (e.g. storing the file as a blob) and the stat of what it read.

    The file is stat'ed before and after; if it moved meanwhile (or `read` failed
    while it moved: libgit2 fails on a file that shrinks under it), it is read again.
    `size_of` (the bytes `read` read) must also be the size stat'ed: a file emptied,
    written and emptied again within one tick of the file system's clock keeps its
    stat, and what was read in between is not what the stat describes. (`size_of`
    gives None when it cannot tell: a clean filter may change the size of a blob.)
    `read_link`: what reads a symlink instead (without `follow`), chosen by the stat
    taken before. Raises UnreadableFile as hash_file does.
    """
    for attempt in range(TRIES):
        if attempt:
            _pause(attempt - 1)
        try:
            before = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            raise _vanished(name) from None
        if not (stat.S_ISREG(before.st_mode) or stat.S_ISLNK(before.st_mode)):
            raise _not_regular(name, before.st_mode)
        failure: OSError | None = None
        reader = read if read_link is None or not stat.S_ISLNK(before.st_mode) else read_link
        try:
            value = reader(path)
        except OSError as exc:  # libgit2's read errors are OSErrors too
            failure = exc
        try:
            after = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            raise _vanished(name) from None
        if same_file(before, after) and (
            failure is not None or size_of is None or size_of(value) in (None, after.st_size)
        ):
            if failure is not None and no_space(failure):
                # Storing writes too: a full disk is no read error of the user's file.
                raise disk_full(f"cannot store {name}", failure) from None
            if failure is not None:  # not a race: a real read error
                raise _unreadable(name, failure) from None
            return value, after
    raise _changing(name)

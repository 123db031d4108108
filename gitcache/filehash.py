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
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from gitcache.errors import UnreadableFile, disk_full, no_space

BLOCK: Final = 1 << 20  # bytes read at a time
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
    regular file.
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
            digest = hashlib.sha1(b"blob %d\0" % before.st_size)
            read = 0
            buffer = bytearray(min(BLOCK, before.st_size + 1))  # small files: small buffer
            view = memoryview(buffer)
            while n := handle.readinto(buffer):
                digest.update(view[:n])
                read += n
        try:
            after = os.stat(path) if follow else os.lstat(path)
        except FileNotFoundError:
            raise _vanished(name) from None
        if read == before.st_size and same_file(before, after):
            return digest.hexdigest(), after
    raise _changing(name)


def read_stable(
    path: Path,
    name: str,
    read: Callable[[Path], T],
    follow: bool = False,
    read_link: Callable[[Path], T] | None = None,
) -> tuple[T, os.stat_result]:
    """`read(path)` (e.g. storing the file as a blob) and the stat of what it read.

    The file is stat'ed before and after; if it moved meanwhile (or `read` failed
    while it moved: libgit2 fails on a file that shrinks under it), it is read again.
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
        if same_file(before, after):
            if failure is not None and no_space(failure):
                # Storing writes too: a full disk is no read error of the user's file.
                raise disk_full(f"cannot store {name}", failure) from None
            if failure is not None:  # not a race: a real read error
                raise _unreadable(name, failure) from None
            return value, after
    raise _changing(name)

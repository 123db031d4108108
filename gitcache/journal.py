"""The journal of a restore that writes files in place, and undoing a killed one.

A restore writes a file that is absent straight at its path (worktree.py: one
`open(O_CREAT | O_EXCL)`, no temporary name, no rename: several times faster for many
small files). kill -9 in the middle would leave a half-written file where the record's
file goes, which the next run would take for the user's. So before its first such
write, a restore lists the paths it is about to create in a journal in this worktree's
git dir (`gitcache/restoring/*.journal`, docs/format.md) and keeps, per path, how far it
got in a slot of the mapped file (a store into shared memory, no system call: the
kernel has it once stored, whatever happens to the process):

    0 not started; 1 about to create it; 2 created (device and inode noted); 3 done.

A file is created with no permission bits (mode 000) and given its mode only once its
bytes are written, so a half-written file is also marked on disk. The journal is
flocked by its restore for as long as it runs, and removed at its end.

`recover` (at the start of every command that looks at outputs) takes each journal
whose lock is free, so its restore is gone, and removes the files it left half-written:
a path in state 2 that is still the very file it created (same device and inode) and
still has mode 000, or, in state 1, an empty regular file of mode 000 there. Anything
else at a journal's path (a file the user put there meanwhile, a done file) is left
alone; the next restore checks what is there as always. Then the journal goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from gitcache.scratch import process_alive

JOURNAL_DIR: Final = "restoring"
SUFFIX: Final = ".journal"
_NEW: Final = ".new"  # being filled in: not yet a journal, and nothing written yet
MAGIC: Final = b"gitcache restore journal 1\n\0\0\0\0\0"  # 32 bytes
_HEAD: Final = struct.Struct("<32sQ")  # magic, number of paths
_SLOT: Final = struct.Struct("<qqq")  # state, device, inode
NOT_STARTED, CREATING, CREATED, DONE = 0, 1, 2, 3
_names = itertools.count()


class Journal:
    """The journal of one restore: `begin(k)`, `created(k, st)`, `done(k)` per path, in
    order; `close()` at the end (removes it), or `abandon()` to leave it for `recover`."""

    def __init__(self, state_dir: Path, paths: Sequence[str]) -> None:
        directory = state_dir / JOURNAL_DIR
        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / f"{os.getpid()}-{next(_names)}-{os.urandom(4).hex()}"
        new = f"{stem}{_NEW}"
        self.path = f"{stem}{SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        self.keep = False
        self._fd = os.open(new, flags, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # held until close: our restore runs
            text = b"".join(os.fsencode(p) + b"\0" for p in paths)
            self._slots = _HEAD.size
            os.write(self._fd, _HEAD.pack(MAGIC, len(paths)))
            os.ftruncate(self._fd, self._slots + _SLOT.size * len(paths) + len(text))
            os.pwrite(self._fd, text, self._slots + _SLOT.size * len(paths))
            import mmap  # here: a command that restores nothing need not import it

            self._map = mmap.mmap(self._fd, 0)
            os.rename(new, self.path)  # now a journal that `recover` reads
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(new)
            os.close(self._fd)
            raise

    def begin(self, index: int) -> None:
        _SLOT.pack_into(self._map, self._slots + _SLOT.size * index, CREATING, 0, 0)

    def created(self, index: int, st: os.stat_result) -> None:
        _SLOT.pack_into(self._map, self._slots + _SLOT.size * index, CREATED, st.st_dev, st.st_ino)

    def skip(self, index: int) -> None:
        """Not created after all (something is there): never ours to remove."""
        struct.pack_into("<q", self._map, self._slots + _SLOT.size * index, NOT_STARTED)

    def done(self, index: int) -> None:
        struct.pack_into("<q", self._map, self._slots + _SLOT.size * index, DONE)

    def close(self) -> None:
        """The restore ends: every file is whole, or was removed, and the journal goes;
        unless `keep` (a half-written file could not be removed): left for `recover`."""
        if not self.keep:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.abandon()

    def abandon(self) -> None:
        """Leave the journal for `recover` (a file it names may be half-written)."""
        self._map.close()
        os.close(self._fd)  # releases the lock


def recover(root: Path, state_dir: Path) -> list[str]:
    """Undo the journals of restores that are gone: remove the files they left
    half-written (paths relative to `root`), then the journals."""
    directory = state_dir / JOURNAL_DIR
    try:
        entries = list(os.scandir(directory))
    except OSError:  # the common case (no such directory): one failed system call
        return []
    removed: list[str] = []
    for entry in entries:
        if not entry.name.endswith((SUFFIX, _NEW)):
            continue
        try:
            fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile (another process recovered it)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its restore is running
            if entry.name.endswith(SUFFIX):
                undone, complete = _undo(root, _read(fd))
                removed += undone
                if not complete:
                    continue  # a file could not be removed: the journal stays for later
            elif _writer_alive(entry.name):
                continue  # made a moment ago, not yet locked by its restore
            with contextlib.suppress(OSError):
                os.unlink(entry.path)  # a `.new` one: nothing was written yet
        finally:
            os.close(fd)
    return removed


def _read(fd: int) -> list[tuple[str, int, int, int]]:
    """(path, state, device, inode) per path of a journal; [] if it is not one."""
    data = b""
    while chunk := os.read(fd, 1 << 20):
        data += chunk
    if len(data) < _HEAD.size:
        return []
    magic, count = _HEAD.unpack_from(data)
    names_at = _HEAD.size + _SLOT.size * count
    if magic != MAGIC or names_at > len(data):
        return []
    names = data[names_at:].split(b"\0")
    if len(names) != count + 1:
        return []
    slots = _SLOT.iter_unpack(data[_HEAD.size : names_at])
    return [(os.fsdecode(n), *slot) for n, slot in zip(names, slots, strict=False)]


def _undo(root: Path, entries: list[tuple[str, int, int, int]]) -> tuple[list[str], bool]:
    """Remove the half-written files of a journal: those removed, and whether every one
    that had to go is gone."""
    removed = []
    complete = True
    real_root = os.path.realpath(root)
    for rel, state, dev, ino in entries:
        if state not in (CREATING, CREATED) or not _safe(rel):
            continue
        path = f"{root}/{rel}"
        # Never through a symlink someone put on the way since.
        if os.path.realpath(os.path.dirname(path)) != os.path.dirname(f"{real_root}/{rel}"):
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0:
            continue  # not a half-written file of ours: its mode would be 000
        if state == CREATED and (st.st_dev, st.st_ino) != (dev, ino):
            continue
        if state == CREATING and st.st_size != 0:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            complete = False
            continue
        removed.append(rel)
    return removed, complete


def _writer_alive(name: str) -> bool:
    pid = name.partition("-")[0]
    return not pid.isdigit() or int(pid) == os.getpid() or process_alive(int(pid))


def _safe(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and not rel.startswith("/") and all(p not in ("", ".", "..") for p in parts)

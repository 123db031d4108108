"""Remember blob ids of worktree files by their stat, so unchanged files are not re-read.

The rule is git's index rule for racily-clean entries: an entry is trusted only if
the file's (size, mtime_ns, ctime_ns, inode, mode) still match and its mtime is
older than the cache file itself. A file written in the same timestamp tick as the
cache could change again without its mtime moving, so it is hashed once more.

The same rule holds for entries this process made: a caller that must see a change
made since a moment (the input recheck after a command) reads the file system's clock
then (`filesystem_now`) and passes it as `racy_from`; a file whose mtime is not older
is hashed again, since it may have been rewritten within the tick its stat was taken in.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gitcache.filehash import hash_file
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, GitRepo
from gitcache.scratch import temp_prefix

CACHE_FILE: Final = "statcache-v1.json"
# Key prefix of a followed symlink's entry (inputs count a link by its target); NUL
# cannot occur in a file name.
_FOLLOWED: Final = "\0"

StatKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class FileState:
    """A worktree file as git would store it."""

    oid: str
    mode: int
    size: int


def git_mode(st: os.stat_result) -> int:
    if stat.S_ISLNK(st.st_mode):
        return MODE_LINK
    return MODE_EXEC if st.st_mode & 0o100 else MODE_FILE


def _key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, git_mode(st))


class StatCache:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / CACHE_FILE
        self._entries: dict[str, tuple[StatKey, str]] = {}
        self._fresh: dict[str, tuple[StatKey, str]] = {}
        self._reference_ns = 0
        self._dirty = False
        self.hashed = 0  # files actually read in this process (benchmarks and tests look)
        self._load()

    def _load(self) -> None:
        try:
            with open(self._path, "rb") as handle:
                self._reference_ns = os.fstat(handle.fileno()).st_mtime_ns
                data = json.load(handle)
            if data.get("version") != 1:
                return
            for rel, (size, mtime, ctime, ino, mode, oid) in data["entries"].items():
                self._entries[rel] = ((size, mtime, ctime, ino, mode), oid)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            # A missing or damaged cache only costs re-hashing.
            self._entries.clear()

    def state(
        self, root: Path, rel: str, follow: bool = False, racy_from: int | None = None
    ) -> FileState | None:
        """The blob id, mode and size of a worktree file, or None if it does not exist.

        `racy_from` (a file system time such as `clock_ns`): a file whose mtime is at or
        after it is hashed again even though its stat still matches.

        A symlink is its link text, unless `follow` (inputs): then it counts as the file
        it points to, and None when it points to nothing or to a directory. Raises
        UnreadableFile when the file keeps changing while it is read, or is not a
        regular file.
        """
        path = root / rel
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        name = rel
        if follow and stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)
            except OSError:  # dangling, or a loop of links
                return None
            name = _FOLLOWED + rel  # the link's own entry stays beside its target's
        if stat.S_ISDIR(st.st_mode):
            return None
        key = _key(st)
        trusted = racy_from is None or key[1] < racy_from
        fresh = self._fresh.get(name)
        if fresh is not None and fresh[0] == key and trusted:
            return FileState(fresh[1], key[4], key[0])
        cached = self._entries.get(name)
        if cached is not None and cached[0] == key and key[1] < self._reference_ns and trusted:
            return FileState(cached[1], key[4], key[0])
        if key[4] == MODE_LINK:
            oid = GitRepo.hash_bytes(os.fsencode(os.readlink(path)))
        else:
            # The stat the bytes belong to: the file may have changed since lstat.
            oid, st = hash_file(path, rel, follow=follow)
            key = _key(st)
        self.hashed += 1
        self._fresh[name] = (key, oid)
        self._dirty = True
        return FileState(oid, key[4], key[0])

    def remember(self, rel: str, st: os.stat_result, oid: str) -> None:
        """Record a blob id we know for a file with this stat (e.g. one we just restored)."""
        self._fresh[rel] = (_key(st), oid)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        merged = {**self._entries, **self._fresh}
        payload = {
            "version": 1,
            "entries": {rel: [*key, oid] for rel, (key, oid) in merged.items()},
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=temp_prefix("statcache"))
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle, separators=(",", ":"))
            os.replace(tmp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        self._dirty = False


CLOCK_PREFIX: Final = ".clock-"


def filesystem_now(directory: Path) -> int:
    """The file system's clock now: the mtime (ns) a file written now gets.

    A file written later gets this mtime or a later one, whatever the file system's
    timestamp granularity (git's racily-clean reasoning, with a fresh reference).
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=CLOCK_PREFIX)
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        os.unlink(name)

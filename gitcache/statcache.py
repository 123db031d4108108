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
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISDIR, S_ISLNK
from typing import Any, Final, NamedTuple

from gitcache.filehash import hash_file
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, GitRepo
from gitcache.scratch import temp_prefix

CACHE_FILE: Final = "statcache-v1.json"
# Key prefix of a followed symlink's entry (inputs count a link by its target); NUL
# cannot occur in a file name.
_FOLLOWED: Final = "\0"


class FileState(NamedTuple):
    """A worktree file as git would store it (a tuple: made once per file, cheaply)."""

    oid: str
    mode: int
    size: int


def git_mode(st: os.stat_result) -> int:
    if stat.S_ISLNK(st.st_mode):
        return MODE_LINK
    return MODE_EXEC if st.st_mode & 0o100 else MODE_FILE


def _key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, git_mode(st)]


class StatCache:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / CACHE_FILE
        # path -> [size, mtime_ns, ctime_ns, ino, mode, oid], rows as the file holds
        # them (checked when used: a damaged row is a miss), and those this process made.
        self._entries: dict[str, list[Any]] = {}
        self._fresh: dict[str, list[Any]] = {}
        self._seals: dict[str, list[str]] = {}  # unit key -> [signature, commit, digest]
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
            entries, seals = data["entries"], data.get("seals", {})
            if isinstance(entries, dict) and isinstance(seals, dict):
                self._entries = entries
                self._seals = {
                    key: seal
                    for key, seal in seals.items()
                    if type(seal) is list and len(seal) == 3 and all(type(x) is str for x in seal)
                }
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass  # a missing or damaged cache only costs re-hashing

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
        path = f"{root}/{rel}"
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
        return self._state_of(path, rel, name, st, follow, racy_from)

    def states_of(
        self, root: Path, found: Sequence[tuple[str, os.stat_result]]
    ) -> list[FileState | None]:
        """The states of worktree files from the lstat just taken of each (a directory:
        None): cached blob ids where the stat vouches for them, else the file hashed.
        One loop for a whole output: 50,000 files cost a few dict look-ups each."""
        fresh, entries, reference = self._fresh, self._entries, self._reference_ns
        states: list[FileState | None] = []
        for rel, st in found:
            mode = st.st_mode
            if S_ISDIR(mode):  # replaced by a directory since it was listed
                states.append(None)
                continue
            mode = MODE_LINK if S_ISLNK(mode) else MODE_EXEC if mode & 0o100 else MODE_FILE
            key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode]
            row = fresh.get(rel)
            if row is None or row[:5] != key:
                row = entries.get(rel)
                if not (
                    type(row) is list
                    and row[:5] == key
                    and key[1] < reference
                    and len(row) == 6
                    and type(row[5]) is str
                ):
                    states.append(self._state_of(f"{root}/{rel}", rel, rel, st, False, None))
                    continue
            states.append(FileState(row[5], mode, key[0]))
        return states

    def _state_of(
        self,
        path: str,
        rel: str,
        name: str,
        st: os.stat_result,
        follow: bool,
        racy_from: int | None,
    ) -> FileState:
        mode = st.st_mode
        mode = MODE_LINK if S_ISLNK(mode) else MODE_EXEC if mode & 0o100 else MODE_FILE
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode]
        if racy_from is None or key[1] < racy_from:
            fresh = self._fresh.get(name)
            if fresh is not None and fresh[:5] == key:
                return FileState(fresh[5], mode, key[0])
            row = self._entries.get(name)
            if (
                type(row) is list
                and row[:5] == key
                and key[1] < self._reference_ns
                and len(row) == 6
                and type(row[5]) is str
            ):
                return FileState(row[5], mode, key[0])
        if mode == MODE_LINK:
            oid = GitRepo.hash_bytes(os.fsencode(os.readlink(path)))
        else:
            # The stat the bytes belong to: the file may have changed since lstat.
            oid, st = hash_file(Path(path), rel, follow=follow)
            key = _key(st)
        self.hashed += 1
        self._fresh[name] = [*key, oid]
        self._dirty = True
        return FileState(oid, key[4], key[0])

    def remember(self, rel: str, st: os.stat_result, oid: str) -> None:
        """Record a blob id we know for a file with this stat (e.g. one we just restored)."""
        self._fresh[rel] = [*_key(st), oid]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        entries = {**self._entries, **self._fresh}
        payload = {"version": 1, "entries": entries, "seals": self._seals}
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

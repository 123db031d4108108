"""Remember blob ids of worktree files by their stat, so unchanged files are not re-read.

The rule is git's index rule for racily-clean entries: an entry is trusted only if
the file's (size, mtime_ns, ctime_ns, inode, mode) still match and its mtime is
older than the cache file itself. A file written in the same timestamp tick as the
cache could change again without its mtime moving, so it is hashed once more.

The same rule holds for entries this process made: a caller that must see a change
made since a moment (the input recheck after a command) reads the file system's clock
then (`filesystem_now`) and passes it as `racy_from`; a file whose mtime is not older
is hashed again, since it may have been rewritten within the tick its stat was taken in.

The file keeps each directory's rows as one JSON text, read when a file of that
directory is first asked for, and written back as read unless a row of it changed: a
run that looks at a few inputs does not parse the rows of a 50,000-file output, and
one that changed a few rows does not serialize all of them again. The texts follow a
one-line header that gives each one's length (format 3), as bytes: loading the file
parses the header only (format 2 held them as JSON strings inside one JSON document,
whose every quote was escaped: a 50,000-file no-op spent ~30 ms unescaping 6 MB).

Seals vouch for a unit's declared outputs all at once: the record they match and a
digest of every file's path and stat. A no-op whose outputs are sealed compares that
digest with the one of the stats it just took, and neither reads the record nor looks
up a row per file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from array import array
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISDIR, S_ISLNK
from typing import Any, Final, NamedTuple

from gitcache.filehash import STAT_CACHE_FILE, hash_file
from gitcache.gitrepo import MODE_EXEC, MODE_FILE, MODE_LINK, GitRepo
from gitcache.scratch import temp_prefix

CACHE_FILE: Final = STAT_CACHE_FILE
_FORMAT2: Final = "statcache-v2.json"  # read when there is no format-3 file yet
_OLD_FILES: Final = ("statcache-v1.json", _FORMAT2)  # removed when the cache is saved
# Key prefix of a followed symlink's entry (inputs count a link by its target); NUL
# cannot occur in a file name.
_FOLLOWED: Final = "\0"

Row = list[Any]  # [size, mtime_ns, ctime_ns, ino, mode, oid]; checked when used


class FileState(NamedTuple):
    """A worktree file as git would store it (a tuple: made once per file, cheaply)."""

    oid: str
    mode: int
    size: int


def git_mode(st: os.stat_result) -> int:
    if stat.S_ISLNK(st.st_mode):
        return MODE_LINK
    return MODE_EXEC if st.st_mode & 0o100 else MODE_FILE


def stat_numbers(st: os.stat_result) -> list[int]:
    """What a row keeps of a file's stat (a row is these and the blob id)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, git_mode(st)]


class StatCache:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / CACHE_FILE
        # directory -> its rows as JSON text, as read (also once parsed: saved again as
        # they were unless a row of this process changed them): views of the file read
        self._texts: dict[str, bytes | memoryview] = {}
        self._dirs: dict[str, dict[str, Row]] = {}  # directory -> file name -> row
        self._fresh: dict[str, Row] = {}  # path -> row, made by this process
        self._seals: dict[str, list[str]] = {}  # unit key -> [signature, commit, digest]
        self._reference_ns = 0
        self._dirty = False
        self.hashed = 0  # files actually read in this process (benchmarks and tests look)
        self._load()

    def _load(self) -> None:
        try:
            with open(self._path, "rb") as handle:
                self._reference_ns = os.fstat(handle.fileno()).st_mtime_ns
                data = handle.read()
        except OSError:
            self._load_format2()
            return
        with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
            end = data.index(b"\n")
            header = json.loads(data[:end])
            if header.get("version") != 3:
                return
            texts: dict[str, bytes | memoryview] = {}
            view = memoryview(data)
            at = end + 1
            for directory, size in header["dirs"]:
                if type(directory) is not str or type(size) is not int or size < 0:
                    return
                texts[directory] = view[at : at + size]
                at += size
            if at != len(data):  # cut short or grown: no row is trusted
                return
            self._texts = texts
            self._seals = _valid_seals(header["seals"])
        # (a damaged cache only costs re-hashing)

    def _load_format2(self) -> None:
        """The cache as gitcache wrote it before format 3 (then removed on saving)."""
        try:
            with open(self._path.with_name(_FORMAT2), "rb") as handle:
                self._reference_ns = os.fstat(handle.fileno()).st_mtime_ns
                data = json.load(handle)
            if data.get("version") != 2:
                return
            dirs = data["dirs"]
            if isinstance(dirs, dict):
                self._texts = {d: text.encode() for d, text in dirs.items() if type(text) is str}
                self._seals = _valid_seals(data["seals"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            pass

    def _rows(self, directory: str) -> dict[str, Row]:
        """The saved rows of a directory's files, read when first asked for."""
        rows = self._dirs.get(directory)
        if rows is None:
            rows = {}
            text = self._texts.get(directory)
            if text is not None:
                with contextlib.suppress(ValueError):
                    loaded = json.loads(bytes(text))
                    if isinstance(loaded, dict):
                        rows = loaded
                if not rows:  # damaged (or empty): not written back
                    del self._texts[directory]
            self._dirs[directory] = rows
        return rows

    def _saved(self, name: str) -> Row | None:
        directory, _, base = name.rpartition("/")
        return self._rows(directory).get(base)

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
        self, root: Path, found: Sequence[tuple[str, os.stat_result]], read: bool = True
    ) -> list[FileState | None]:
        """The states of worktree files from the lstat just taken of each (a directory:
        None): cached blob ids where the stat vouches for them, else the file hashed
        (without `read`: None, for a caller that reads such files itself).
        One loop for a whole output: 50,000 files cost a few dict look-ups each."""
        fresh, dirs, reference = self._fresh, self._dirs, self._reference_ns
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
                directory, _, base = rel.rpartition("/")
                rows = dirs.get(directory)
                row = (self._rows(directory) if rows is None else rows).get(base)
                if not (
                    type(row) is list
                    and row[:5] == key
                    and key[1] < reference
                    and len(row) == 6
                    and type(row[5]) is str
                ):
                    path = f"{root}/{rel}"
                    states.append(self._state_of(path, rel, rel, st, False, None) if read else None)
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
            cached = self._cached(name, key)
            if cached is not None:
                return FileState(cached, mode, key[0])
        if mode == MODE_LINK:
            oid = GitRepo.hash_bytes(os.fsencode(os.readlink(path)))
        else:
            # The stat the bytes belong to: the file may have changed since lstat.
            oid, st = hash_file(Path(path), rel, follow=follow)
            key = stat_numbers(st)
        self.hashed += 1
        self._fresh[name] = [*key, oid]
        self._dirty = True
        return FileState(oid, key[4], key[0])

    def _cached(self, name: str, key: list[int]) -> str | None:
        """The blob id a row gives for a file of this stat key: one this process made,
        or a saved one older than the cache file (git's racily-clean rule)."""
        fresh = self._fresh.get(name)
        if fresh is not None and fresh[:5] == key:
            return str(fresh[5])
        row = self._saved(name)
        if (
            type(row) is list
            and row[:5] == key
            and key[1] < self._reference_ns
            and len(row) == 6
            and type(row[5]) is str
        ):
            return row[5]
        return None

    # -- seals: a unit's outputs vouched for at once ----------------------------------

    def sealed(
        self,
        key: str,
        signature: str,
        commit: str,
        walked: Sequence[Sequence[tuple[str, os.stat_result]] | None],
    ) -> bool:
        """Whether unit `key`'s declared outputs, as just walked (per declared output its
        files with their lstat, sorted; None: missing), are exactly what a seal made for
        record `commit` of `signature` vouched for: the same files with the same stats,
        each older than this cache file (the racily-clean rule, for all at once).
        """
        seal = self._seals.get(key)
        if seal is None or seal[0] != signature or seal[1] != commit:
            return False
        shape: list[int] = []
        paths: list[str] = []
        numbers: list[int] = []
        add = numbers.extend
        for group in walked:
            if group is None:
                shape.append(-1)
                continue
            shape.append(len(group))
            for rel, st in group:
                mode = st.st_mode
                mode = MODE_LINK if S_ISLNK(mode) else MODE_EXEC if mode & 0o100 else MODE_FILE
                paths.append(rel)
                add((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode))
        if max(numbers[1::5], default=0) >= self._reference_ns:
            return False
        try:
            return _digest(shape, paths, numbers) == seal[2]
        except OverflowError:  # a number beyond 64 bits: no seal was made for it either
            return False

    def seal(
        self,
        key: str,
        signature: str,
        commit: str,
        files: Sequence[Sequence[tuple[str, str]] | None],
    ) -> None:
        """Vouch that unit `key`'s declared outputs hold `files` (per declared output its
        (path, blob id) pairs; None: missing) and that they are what record `commit` of
        `signature` holds.

        The caller knows the second (it compared or wrote them); the seal stands for the
        stat rows this cache has for those files now, the rows that gave or took their
        blob ids. A file without a usable row, or whose row names another blob (the file
        changed and was hashed again before a deferred record's seal): no seal.
        """
        shape: list[int] = []
        paths: list[str] = []
        numbers: list[int] = []
        for group in files:
            if group is None:
                shape.append(-1)
                continue
            shape.append(len(group))
            for rel, blob in sorted(group):
                row = self._fresh.get(rel)
                if row is None:
                    row = self._saved(rel)
                    if not (type(row) is list and len(row) == 6 and row[1] < self._reference_ns):
                        return
                if row[5] != blob:
                    return
                paths.append(rel)
                numbers.extend(row[:5])
        try:
            seal = [signature, commit, _digest(shape, paths, numbers)]
        except (TypeError, OverflowError):  # a damaged row
            return
        if self._seals.get(key) != seal:
            self._seals[key] = seal
            self._dirty = True

    def remember(self, rel: str, st: os.stat_result, oid: str) -> None:
        """Record a blob id we know for a file with this stat (e.g. one we just restored)."""
        self.remember_numbers(rel, stat_numbers(st), oid)

    def remember_numbers(self, rel: str, numbers: list[int], oid: str) -> None:
        """`remember` with the file's `stat_numbers` (taken by another process)."""
        self._fresh[rel] = [*numbers, oid]
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        # Only the directories that rows of this process changed are written anew: a
        # 50,000-file output with one file changed costs one directory's rows, not all.
        texts = dict(self._texts)
        touched: dict[str, dict[str, Row]] = {}
        for rel, row in self._fresh.items():
            directory, _, base = rel.rpartition("/")
            rows = touched.get(directory)
            if rows is None:
                rows = touched[directory] = dict(self._rows(directory))
            rows[base] = row
        for directory, rows in touched.items():
            # ASCII (non-UTF-8 names escaped), so its length in bytes is its length.
            texts[directory] = json.dumps(rows, separators=(",", ":")).encode()
        dirs = [[directory, len(text)] for directory, text in texts.items()]
        header = {"version": 3, "seals": self._seals, "dirs": dirs}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=temp_prefix("statcache"))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
                handle.writelines(texts.values())
            os.replace(tmp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        for old in _OLD_FILES:
            with contextlib.suppress(OSError):
                os.unlink(self._path.parent / old)
        self._dirty = False


def _valid_seals(seals: object) -> dict[str, list[str]]:
    if not isinstance(seals, dict):
        return {}
    return {
        key: seal
        for key, seal in seals.items()
        if type(seal) is list and len(seal) == 3 and all(type(x) is str for x in seal)
    }


def _digest(shape: list[int], paths: list[str], numbers: list[int]) -> str:
    """BLAKE2b of the files' count per declared output, their stats and their paths.

    Paths hold no NUL, so joined with NUL they are unambiguous; surrogateescape: a name
    that is not UTF-8 is its bytes again.
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(array("q", shape).tobytes())
    digest.update(array("q", numbers).tobytes())
    digest.update("\0".join(paths).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


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

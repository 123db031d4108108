"""The worktree: expanding inputs, blob ids through the stat cache, restoring outputs.

Inputs follow symlinks (as make and DVC do): a symlinked file counts by the content
it points to, a symlinked directory is walked (a link back to a directory being
walked is not entered again), and a link to nothing is reported. Outputs are taken
as they are: a symlink is stored as a symlink, never followed.

Restoring makes each declared output hold exactly what a record holds: files the
record names are written, files under a recorded directory that the record does not
name are removed, and an output recorded as an empty directory is created. Content
that no record of the step holds is never dropped silently (`plan_restore` refuses).
Only files that a record names are written, after every path has been checked:
relative, no `..`, nothing in `.git`, no existing symlinked directory on the way, no
output used as a directory by another, no symlink that is absolute, leaves the
worktree (also through symlinks already there) or points into any `.git`, every blob
present with the size the record says, and the total within the limits. Checks come
first, writes after, so a hostile record writes nothing at all.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import queue
import stat
import tempfile
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from gitcache import forkedwriter
from gitcache.dirtree import make_dirs, remove_tree, walk
from gitcache.errors import (
    DiskFull,
    StepFailed,
    UnreadableFile,
    UnsafeRecord,
    WorktreeConflict,
    is_utf8,
    no_space,
)
from gitcache.filehash import read_stable, same_file
from gitcache.forkedwriter import ForkedWriter
from gitcache.gitrepo import MODE_EXEC, MODE_LINK, GitRepo, relative_posix
from gitcache.journal import Journal, recover
from gitcache.objects.loose import blob_hasher, write_pieces
from gitcache.objects.stored import StoredFile
from gitcache.processes import collector_paused, start_quiet
from gitcache.record import OutputFile, check_relative_path, shown_path
from gitcache.statcache import FileState, StatCache, git_mode, stat_numbers
from gitcache.transfer import Meter

if TYPE_CHECKING:
    from gitcache.objects.reader import PackedBlobs

GLOB_CHARS = frozenset("*?[")
_MAX_LINK_HOPS = 40  # as Linux's ELOOP limit
_NAME_MAX = 255  # bytes in a file name (Linux, macOS)
_PATH_MAX = 4096  # bytes in a path with its NUL (Linux)


@dataclass(frozen=True)
class RestoreLimits:
    """The most one restore may write (gitcache.toml `[restore]`), whatever a record says."""

    max_files: int = 100_000
    max_bytes: int = 10 * 2**30


@dataclass(frozen=True)
class Expansion:
    files: list[str]  # sorted, unique, posix, relative to the root
    missing: list[str]  # declared patterns that matched nothing
    dangling: list[str] = field(default_factory=list)  # symlinks (followed) to nothing


@dataclass(frozen=True)
class RestorePlan:
    """What restoring a record changes in the worktree (Worktree.plan_restore)."""

    write: list[OutputFile] = field(default_factory=list)  # missing, or held otherwise
    remove: list[str] = field(default_factory=list)  # under a recorded output, not recorded
    dirs: list[str] = field(default_factory=list)  # outputs recorded as empty directories
    unchanged: list[str] = field(default_factory=list)  # already hold the record's content
    scopes: list[str] = field(default_factory=list)  # the declared outputs made exact
    # Worktree files whose content differed from the record and is dropped (overwritten
    # or removed): content some record of the step holds, or anything with `force`.
    discarded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkIds:
    """The chunk blob ids of a record's outputs stored in chunks (StoredRecord.chunks)."""

    record: str = ""  # the record commit, for messages
    files: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # The sizes of the outputs stored whole are their blobs' (RecordStore.sizes_read):
    # a restore does not read 50,000 headers again.
    sized: bool = False

    def blobs(self, out: OutputFile) -> Sequence[str]:
        """The blobs that hold `out` in order (UnsafeRecord if its chunks are unknown)."""
        if out.chunks is None:
            return (out.blob,)
        found = self.files.get(out.path)
        if found is None or len(found) != out.chunks:
            raise UnsafeRecord(
                f"refusing to restore {out.path}: the record's chunks of it are not known"
            )
        return found


class Worktree:
    def __init__(
        self, repo: GitRepo, cache: StatCache, limits: RestoreLimits | None = None
    ) -> None:
        self.repo = repo
        self.root = repo.root
        self._root_size = len(os.fsencode(self.root))  # bytes (_check_length, per path)
        self.cache = cache
        self.limits = limits or RestoreLimits()

    def state(
        self, rel: str, follow: bool = False, racy_from: int | None = None
    ) -> FileState | None:
        """A file's blob id, mode and size (None if missing); `follow` for inputs;
        `racy_from`: hash again a file whose mtime is not older (StatCache.state)."""
        return self.cache.state(self.root, rel, follow, racy_from)

    # -- expanding -------------------------------------------------------------------

    def expand(self, patterns: Iterable[str], follow: bool = True) -> Expansion:
        """Files named by paths, directories (recursively) and globs.

        With `follow` (inputs), symlinks to directories are walked and symlinks to
        nothing are listed in `dangling`; without, a symlink is a file like any other.
        """
        files: set[str] = set()
        missing: list[str] = []
        dangling: list[str] = []
        for pattern in patterns:
            found, broken = self._expand_one(pattern, follow)
            for rel in sorted((*found, *broken)):
                if not is_utf8(rel):  # two such names would be one key (U+FFFD) in a record
                    raise UnreadableFile(_not_utf8(rel, "input"))
            files.update(found)
            dangling.extend(broken)
            if not found and not broken:
                missing.append(pattern)
        return Expansion(sorted(files), missing, sorted(set(dangling)))

    def _expand_one(self, pattern: str, follow: bool) -> tuple[list[str], list[str]]:
        if not GLOB_CHARS & set(pattern):
            return self._expand_path(pattern, follow)
        files: list[str] = []
        dangling: list[str] = []
        # A match is a path, never a pattern again: `x[1].csv` is that file.
        for match in self._glob(pattern):
            found, broken = self._expand_path(match, follow)
            files += found
            dangling += broken
        return files, dangling

    def _expand_path(self, pattern: str, follow: bool) -> tuple[list[str], list[str]]:
        """The files of one path taken literally: itself, or a directory's files."""
        files: list[str] = []
        dangling: list[str] = []
        path = self.root / pattern
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        if follow and stat.S_ISLNK(st.st_mode):
            try:
                st = os.stat(path)
            except OSError:  # dangling, or a loop of links
                return [], [pattern]
        if not stat.S_ISDIR(st.st_mode):
            return [pattern], []
        self._walk(pattern, follow, frozenset({(st.st_dev, st.st_ino)}), files, dangling)
        return files, dangling

    def _walk(
        self,
        rel_dir: str,
        follow: bool,
        ancestors: frozenset[tuple[int, int]],
        files: list[str],
        dangling: list[str],
    ) -> None:
        """Files under a directory, `.git` left out; `ancestors` stops link cycles."""
        # A stack, not recursion: a directory may nest deeper than the recursion limit.
        stack = [(rel_dir, ancestors)]
        while stack:
            rel_dir, ancestors = stack.pop()
            try:
                entries = list(os.scandir(self.root / rel_dir))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise _unreadable_dir(rel_dir, exc) from None
            for entry in entries:
                if _is_dot_git(entry.name):  # nested repositories and submodules
                    continue
                rel = f"{rel_dir}/{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in ancestors:  # reached again through a link
                        stack.append((rel, ancestors | {(st.st_dev, st.st_ino)}))
                elif follow and entry.is_symlink():
                    try:
                        st = os.stat(entry.path)
                    except OSError:
                        dangling.append(rel)
                        continue
                    if not stat.S_ISDIR(st.st_mode):
                        files.append(rel)
                    elif (st.st_dev, st.st_ino) not in ancestors:  # a link back up: skipped
                        stack.append((rel, ancestors | {(st.st_dev, st.st_ino)}))
                else:
                    files.append(rel)

    def _glob(self, pattern: str) -> list[str]:
        """The paths a glob matches, as `glob.glob(pattern, recursive=True)` matches them.

        Wildcards skip names starting with a dot unless the pattern's component starts
        with one, and never match a `.git`. `**` matches zero or more directories,
        following symlinked directories except one that leads back to a directory
        already on the way (so a link cycle ends, where the standard glob never does);
        `**` at the end matches the directory before it (all its files, once expanded).
        A component also matches the name it spells (`x[1].csv` is that file, as in
        git's pathspecs): a literal file is never left out of the inputs it names.
        """
        found: list[str] = []
        self._glob_in("", [p for p in pattern.split("/")], frozenset(), found)
        return found

    def _glob_in(
        self, rel: str, parts: list[str], ancestors: frozenset[tuple[int, int]], found: list[str]
    ) -> None:
        """Match `parts` under the directory `rel` ("" for the root), adding to `found`."""
        if not parts:
            found.append(rel)
            return
        head, rest = parts[0], parts[1:]
        if head == "":  # `a//b`, or a trailing `/`: only a directory matches
            if not rest:
                if os.path.isdir(self.root / rel):
                    found.append(rel)
                return
            self._glob_in(rel, rest, ancestors, found)
            return
        if head == "**":
            if not rest:
                if rel:
                    found.append(rel)
                else:
                    found += [n for n, _ in self._entries("") if not n.startswith(".")]
                return
            for below, seen in self._dirs_below(rel, ancestors):
                self._glob_in(below, rest, seen, found)
            return
        if not GLOB_CHARS & set(head):
            child = f"{rel}/{head}" if rel else head
            if rest:
                if os.path.isdir(self.root / child):
                    self._glob_in(child, rest, ancestors, found)
            elif os.path.lexists(self.root / child):
                found.append(child)
            return
        for name, is_dir in self._entries(rel):
            if (
                (head.startswith(".") or not name.startswith("."))
                and not _is_dot_git(name)
                and (name == head or fnmatch.fnmatchcase(name, head))
            ):
                child = f"{rel}/{name}" if rel else name
                if not rest:
                    found.append(child)
                elif is_dir:
                    self._glob_in(child, rest, ancestors, found)

    def _entries(self, rel: str) -> list[tuple[str, bool]]:
        """The names in directory `rel`, sorted, each with whether it is a directory (or
        a symlink to one); [] if `rel` cannot be listed. One stat only per symlink."""
        try:
            with os.scandir(self.root / rel) as listing:
                return sorted((e.name, _is_dir(e)) for e in listing)
        except OSError:  # not a directory, unreadable, gone
            return []

    def _dirs_below(
        self, rel: str, ancestors: frozenset[tuple[int, int]]
    ) -> Iterator[tuple[str, frozenset[tuple[int, int]]]]:
        """`rel` and each directory under it that `**` matches (no dot names), symlinked
        ones followed unless they lead to a directory already on the way; each with the
        real directories on its way."""
        # A stack, not recursion: a directory may nest deeper than the recursion limit.
        stack = [(rel, ancestors)]
        while stack:
            rel, ancestors = stack.pop()
            try:
                st = os.stat(self.root / rel)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                continue
            seen = ancestors | {key}
            yield rel, seen
            below = [
                (f"{rel}/{name}" if rel else name, seen)
                for name, is_dir in self._entries(rel)
                if is_dir and not name.startswith(".")
            ]
            stack.extend(reversed(below))  # popped in sorted order, as before

    def output_files(self, declared: str) -> list[str] | None:
        """The files of a declared output, symlinks as files (never followed), sorted.

        [] for an empty directory, None when nothing is there.
        """
        found = self._output_walk(declared, False)
        return None if found is None else [rel for rel, _ in found]

    def output_stats(self, declared: str) -> list[tuple[str, os.stat_result]] | None:
        """`output_files`, each file with its lstat (one system call per file: the
        directory listing's entry is stat'ed, the path is not looked up again)."""
        found = self._output_walk(declared, True)
        return None if found is None else cast(list[tuple[str, os.stat_result]], found)

    def _output_walk(
        self, declared: str, stats: bool
    ) -> list[tuple[str, os.stat_result | None]] | None:
        root = str(self.root)
        try:
            st = os.lstat(f"{root}/{declared}")
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return [(declared, st)]
        found: list[tuple[str, os.stat_result | None]] = []
        # (directory, the real directories on its way): a bind mount can loop.
        pending = [(declared, frozenset({(st.st_dev, st.st_ino)}))]
        while pending:
            rel_dir, ancestors = pending.pop()
            try:
                # Listed through a descriptor, so each entry's lstat is an fstatat in it:
                # one name for the kernel to look up per file, not the path from the root.
                fd = os.open(f"{root}/{rel_dir}", _LIST_DIR)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise _unreadable_dir(rel_dir, exc) from None
            try:
                try:
                    with os.scandir(fd) as listing:
                        entries = list(listing)
                except OSError as exc:
                    raise _unreadable_dir(rel_dir, exc) from None
                for entry in entries:
                    name = entry.name
                    if name[0] == "." and _is_dot_git(name):  # nested repositories, submodules
                        continue
                    rel = f"{rel_dir}/{name}"
                    if entry.is_dir(follow_symlinks=False):
                        sub = entry.stat(follow_symlinks=False)
                        if (sub.st_dev, sub.st_ino) not in ancestors:
                            pending.append((rel, ancestors | {(sub.st_dev, sub.st_ino)}))
                    elif not stats:
                        found.append((rel, None))
                    else:
                        try:
                            found.append((rel, entry.stat(follow_symlinks=False)))
                        except FileNotFoundError:  # removed meanwhile: as if listed later
                            continue
            finally:
                os.close(fd)
        found.sort(key=_first)
        return found

    def output_walk(self, outputs: Sequence[str]) -> list[list[tuple[str, os.stat_result]] | None]:
        """`output_stats` of each declared output, in order."""
        return [self.output_stats(declared) for declared in outputs]

    def output_states(
        self,
        outputs: Sequence[str],
        walked: Sequence[Sequence[tuple[str, os.stat_result]] | None] | None = None,
    ) -> dict[str, FileState | None]:
        """Each file of each declared output (a directory gives its files); None if missing.

        An empty directory gives no entry: it is there, and holds no file. `walked`:
        what `output_walk(outputs)` just gave, so the files are not listed again.
        """
        states: dict[str, FileState | None] = {}
        if walked is None:
            walked = self.output_walk(outputs)
        for declared, found in zip(outputs, walked, strict=True):
            if found is None:
                states[declared] = None
                continue
            paths = [rel for rel, _ in found]
            states.update(zip(paths, self.cache.states_of(self.root, found), strict=True))
        return states

    # -- before a step runs, after it ran ----------------------------------------------

    def clear_outputs(self, declared: Iterable[str]) -> None:
        """Remove every declared output that exists: a file, a symlink, a whole directory.

        So the command never writes through a symlink that a record put there, and a
        directory output holds only what this run makes. A symlink is unlinked, never
        followed (`dirtree.remove_tree` does not follow links inside a directory either).
        Raises StepFailed when one cannot be removed, or would take the repository with
        it (reached through a symlinked parent: `up/repo` with `up -> ..`).
        """
        for rel in declared:
            path = self.root / rel
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    self._check_clearable(rel, path)
                    remove_tree(path)
                else:
                    os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise StepFailed(
                    f"cannot remove output {rel} before the step runs: {exc.strerror or exc}"
                ) from None

    def _check_clearable(self, rel: str, path: Path) -> None:
        """Never remove a directory that is, or holds, the worktree or its git directory."""
        real = Path(os.path.realpath(path))
        for precious in (
            Path(os.path.realpath(self.root)),
            self.repo.git_dir,
            self.repo.common_dir,
        ):
            if real == precious or real in precious.parents:
                raise StepFailed(
                    f"refusing to remove output {rel} before the step runs: it is {real}, "
                    f"which holds {precious}"
                )
        # A repository inside (a nested clone, a submodule's checkout): its history and
        # unpushed work are in no record, so it is never removed with the output.
        for dirpath, dirnames, filenames in walk(path):
            if ".git" in dirnames or ".git" in filenames:
                nested = relative_posix(self.root, Path(dirpath) / ".git")
                raise StepFailed(
                    f"refusing to remove output {rel} before the step runs: it holds a git "
                    f"repository ({shown_path(nested)}); move it out of the output"
                )

    def store_output(
        self,
        rel: str,
        write_file: Callable[[Path], StoredFile],
        write_bytes: Callable[[bytes], str],
    ) -> OutputFile:
        """Store one output file as a blob, or in chunks when big (objects/stream.py; a
        symlink as its link text): its OutputFile.

        Mode and size come from the stat taken after the blob was written, and the file
        is stored again if it changed meanwhile (UnreadableFile if it keeps changing).
        A file whose path no record may hold (a backslash in its name, say) is a
        StepFailed naming it.
        """
        _check_output_path(rel)
        small = self._store_small(rel, write_bytes)
        if small is not None:
            return small

        def store_link(path: Path) -> StoredFile:
            text = os.fsencode(os.readlink(path))
            return StoredFile(write_bytes(text), len(text))

        # A symlink or not: told by the stat read_stable takes anyway (no lstat of ours).
        stored, st = read_stable(
            self.root / rel, rel, write_file, read_link=store_link, size_of=lambda s: s.size
        )
        self.cache.remember(rel, st, stored.oid)
        chunks = None if stored.chunks is None else len(stored.chunks)
        return OutputFile(
            path=rel, blob=stored.oid, mode=git_mode(st), size=st.st_size, chunks=chunks
        )

    def store_walked(
        self,
        found: Sequence[tuple[str, os.stat_result]],
        write_file: Callable[[Path], StoredFile],
        write_bytes: Callable[[bytes], str],
        is_stored: Callable[[str], bool],
        states: Mapping[str, FileState | None] | None = None,
        recorded: Mapping[str, OutputFile] | None = None,
        done: Callable[[], None] | None = None,
        recorded_held: bool = False,
    ) -> list[OutputFile]:
        """`store_output` of each file of an output just walked (`output_stats`), for
        files no command has just written (`-s build`; a command's are newer than any
        row): a file whose blob id the stat cache vouches for as of that walk, and whose
        blob the repository holds, is not read at all, so re-recording an output of
        which few files changed costs the walk's stat per unchanged file.

        `states`: what `output_states` gave for this walk (an evaluation's: it read the
        files no row vouched for, and their blob ids count too); without it, the rows
        alone. Anything else (no row, a changed or racy stat, a blob not stored, a big
        file: its chunk ids are not in the stat cache) is stored by `store_output`.
        `recorded`: the outputs of the record these files were compared with; a file
        that holds what it says is that same OutputFile again (a new one is about a
        microsecond, 50,000 of them add up), its path checked when the record was read.
        `recorded_held`: the repository holds those outputs' blobs (their sizes were
        read from the blobs' headers: RecordStore.sizes_read), not looked up again.
        """
        if states is None:
            known = self.cache.states_of(self.root, found, read=False)
        else:
            known = [states.get(rel) for rel, _ in found]
        recorded = recorded or {}
        files: list[OutputFile] = []
        for (rel, _), state in zip(found, known, strict=True):
            if state is None or state.size > _WHOLE_MAX:
                files.append(self.store_output(rel, write_file, write_bytes))
                if done is not None:
                    done()
                continue
            out = recorded.get(rel)
            if (
                out is None
                or out.blob != state.oid
                or out.mode != state.mode
                or out.size != state.size
                or out.chunks is not None
            ):
                out = None
            if not ((out is not None and recorded_held) or is_stored(state.oid)):
                files.append(self.store_output(rel, write_file, write_bytes))
            elif out is not None:
                files.append(out)
            else:
                _check_output_path(rel)
                files.append(OutputFile(path=rel, blob=state.oid, mode=state.mode, size=state.size))
            if done is not None:
                done()
        return files

    def _store_small(self, rel: str, write_bytes: Callable[[bytes], str]) -> OutputFile | None:
        """A small regular file stored in one read (the common case of a many-file
        output: no pathlib, no stat before the open); None for anything else (a
        symlink, a big file, one that changed while it was read), which `read_stable`
        stores as always.

        The same rule as read_stable's: the bytes count only if the file they came from
        (its fstat) is still the one at the path, unchanged (an lstat after the read).
        """
        path = f"{self.root}/{rel}"
        try:
            fd = os.open(path, _READ_SMALL)
        except OSError:  # a symlink (ELOOP), gone, unreadable: read_stable says which
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > _SMALL_MAX:
                return None
            data = os.read(fd, st.st_size + 1)  # one more: a file that grew is noticed
            while len(data) <= st.st_size and (more := os.read(fd, st.st_size + 1 - len(data))):
                data += more
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            after = os.lstat(path)
        except OSError:
            return None
        if len(data) != st.st_size or not same_file(st, after):
            return None
        oid = write_bytes(data)
        self.cache.remember(rel, after, oid)
        return OutputFile(path=rel, blob=oid, mode=git_mode(after), size=after.st_size)

    # -- restoring -------------------------------------------------------------------

    def plan_restore(
        self,
        outputs: Sequence[OutputFile],
        scopes: Sequence[str],
        known: Callable[[], Mapping[str, set[str]]],
        force: bool = False,
        step: str = "",
        hint: str | None = None,
    ) -> RestorePlan:
        """What making the worktree hold exactly `outputs` takes, or WorktreeConflict.

        `scopes` are the declared outputs the record stands for: under each, a file the
        record does not name is removed, and a scope with no recorded file is an empty
        directory. A worktree file that would be overwritten or removed while its content
        is in no record of the step (`known()`: path -> blob ids the step's records hold,
        asked only when some file would be dropped) makes the plan fail, unless `force`.
        """
        recorded = {o.path: o for o in outputs}
        plan = RestorePlan(scopes=list(scopes))
        at_risk: list[tuple[str, str]] = []  # (path, blob id in the worktree)
        # Each scope walked once, its files' states in one pass (not a look-up per path).
        walks = {scope: self.output_stats(scope) for scope in scopes}
        found = self.output_states(list(walks), list(walks.values()))
        for out in outputs:
            if out.path in found:
                state = found[out.path]
            elif _scope_of(out.path, walks) is not None:
                # Under a scope, yet not listed: missing, or reached through a symlink
                # that the plan removes (the scope itself, say) and so to be written.
                state = None
            else:  # under no scope: as its path resolves
                state = self.state(out.path)
            if state is not None and state.oid == out.blob and state.mode == out.mode:
                plan.unchanged.append(out.path)
                continue
            plan.write.append(out)
            if state is not None:
                at_risk.append((out.path, state.oid))
        for scope in scopes:
            if not any(p == scope or p.startswith(scope + "/") for p in recorded):
                plan.dirs.append(scope)
            for rel, _ in walks[scope] or ():
                if rel not in recorded:
                    plan.remove.append(rel)
                    state = found[rel]
                    if state is not None:
                        at_risk.append((rel, state.oid))
        if at_risk and not force:
            held = known()
            lost = [p for p, oid in at_risk if oid not in held.get(p, ())]
            if lost:
                raise _conflict(lost, recorded, step, hint)
        plan.discarded.extend(p for p, _ in at_risk)
        return plan

    def restore(
        self,
        files: Sequence[OutputFile],
        progress: Meter | None = None,
        chunks: ChunkIds | None = None,
    ) -> None:
        """Write files from git into the worktree, all checks before any write."""
        self.apply(RestorePlan(write=list(files)), progress, chunks)

    def apply(
        self,
        plan: RestorePlan,
        progress: Meter | None = None,
        chunks: ChunkIds | None = None,
    ) -> None:
        """Carry out a restore plan: every check first, then removals, directories, files.

        `chunks`: the chunk ids of the record's outputs stored in chunks (store.load).
        """
        # A restore makes no reference cycles, yet the objects it keeps per file (stat
        # cache rows, index entries) set off full collections that walk every object of
        # a 50,000-output record and free nothing (~0.1 s of its restore's 2.5 s).
        with collector_paused():
            self._apply(plan, progress, chunks)

    def _apply(self, plan: RestorePlan, progress: Meter | None, chunks: ChunkIds | None) -> None:
        from gitcache.objects.writer import PACKED_MAX

        files = plan.write
        source = chunks or ChunkIds()
        # Many small blobs: read from their packs in one pass rather than one by one.
        small = [o.blob for o in files if o.chunks is None and 0 < o.size <= PACKED_MAX]
        packed = self.repo.packed_blobs(small) if len(small) >= _ONE_PASS_MIN else None
        self._check_set(files, source, packed)
        removing = set(plan.remove)
        seen: dict[str, str] = {}  # directory on the way -> what it is (_check_parents)
        for rel in plan.remove:
            self._check_parents(rel, removing, "remove", seen)
        targets = [(f, *self._target(f, removing, seen)) for f in files]
        for rel in plan.dirs:
            self._check_dir(rel, removing, seen)
        links = {
            o.path: os.fsdecode(self.repo.read_blob(o.blob)) for o in files if o.mode == MODE_LINK
        }
        planned = {o.path for o in files if o.mode != MODE_LINK} | removing
        for out in files:
            if out.mode == MODE_LINK:
                self._check_link(out, links, planned)
        for rel in plan.remove:
            with _writing("remove", rel), contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / rel)  # a symlink is unlinked, never followed
        for rel in plan.remove:
            self._prune(rel, plan.scopes)
        for rel in plan.dirs:
            with _writing("create directory", rel):
                make_dirs(self.root / rel)
        # Each directory the files go to, made once (checked above: no symlink on the
        # way), not looked up again for every file.
        for parent in sorted({os.path.dirname(target) for _, target, _ in targets}):
            with _writing("create directory", relative_posix(self.root, Path(parent))):
                make_dirs(parent)
        # Files that are absent (a whole file, not a link) are written in place, the
        # paths listed in a journal first (journal.py); others through a temporary file.
        in_place = [k for k, (out, _, absent) in enumerate(targets) if absent and _in_place(out)]
        journal = (
            _journal(self.repo.worktree_state_dir, [targets[k][0].path for k in in_place])
            if in_place
            else None
        )
        umask = _umask()
        # Each file's slot in the journal (-1: not written in place).
        slots = [-1] * len(targets)
        if journal is None:
            in_place = []
        for slot, position in enumerate(in_place):
            slots[position] = slot
        current = ""  # the file being written: named if the worktree refuses the write
        second: ForkedWriter | None = None

        def write(position: int) -> None:
            out, target, _ = targets[position]
            slot = slots[position]
            if slot >= 0:
                assert journal is not None
                st = self._write_new(out, target, source, progress, journal, slot, umask, packed)
                if st is not None:
                    self.cache.remember(out.path, st, out.blob)
                    if progress is not None:
                        progress.file_done()
                    return
            link = links.get(out.path)
            self._write(out, Path(target), source, progress, link, umask, packed)
            if progress is not None:
                progress.file_done()

        try:
            try:
                with self.repo.unchecked_reads():  # _write hashes every file it writes
                    handed = self._second_share(targets, in_place, packed)
                    if handed:
                        assert journal is not None and packed is not None
                        second = ForkedWriter(len(handed))  # before the fork: stop() knows it
                        second.start(
                            self._second_writes(
                                handed, targets, slots, source, journal, umask, packed
                            )
                        )
                    skip = set(handed)
                    for position in range(len(targets)):
                        if position not in skip:
                            current = targets[position][0].path
                            write(position)
                    if second is not None:
                        results = second.finish()
                        second = None
                        for position, numbers in zip(handed, results, strict=True):
                            out = targets[position][0]
                            current = out.path
                            if numbers is None:  # not written there: written here
                                write(position)
                                continue
                            self.cache.remember_numbers(out.path, numbers, out.blob)
                            if progress is not None:
                                progress.add(out.size)
                                progress.file_done()
            except OSError as exc:  # one handler for the batch: not a `with` per file
                raise _write_refused("restore", current, exc) from None
        except BaseException:
            if second is not None:
                second.stop()  # nothing writes any more when the journal is undone
            if journal is not None:
                # A signal (Ctrl-C, SIGTERM) may land between the open that made a file
                # and its cleanup: only the journal knows it, so it is kept and undone now.
                journal.keep = True
                journal.close()
                recover(self.root, self.repo.worktree_state_dir)
            raise
        if journal is not None:
            journal.close()
        if progress is not None:
            progress.finish()

    def _prune(self, removed: str, scopes: Sequence[str]) -> None:
        """Remove directories that removing `removed` left empty, strictly below its scope."""
        parent = Path(removed).parent.as_posix()
        while any(parent.startswith(scope + "/") for scope in scopes):
            try:
                os.rmdir(self.root / parent)
            except OSError:
                return
            parent = Path(parent).parent.as_posix()

    def _check_set(
        self, files: Sequence[OutputFile], chunks: ChunkIds, packed: PackedBlobs | None = None
    ) -> None:
        """Limits, blobs as the record describes them (sizes from object headers, unless
        the record's were read so: ChunkIds.sized), and no path under another."""
        limits = self.limits
        if len(files) > limits.max_files:
            raise UnsafeRecord(
                f"refusing to restore {len(files)} files: more than restore.max_files = "
                f"{limits.max_files}",
                hint="raise [restore] max_files in gitcache.toml if this is expected",
            )
        total = 0
        for out in files:
            if chunks.sized and out.chunks is None:
                total += out.size
                continue
            size = 0
            for oid in chunks.blobs(out):
                entry = None if packed is None else packed.header(oid)
                if entry is not None:  # from its pack entry, read anyway
                    header: tuple[str, int] | None = ("blob" if entry[0] == 3 else "?", entry[1])
                else:
                    header = self.repo.read_header(oid)
                if header is None or header[0] != "blob":
                    raise UnsafeRecord(f"refusing to restore {out.path}: blob {oid} is missing")
                size += header[1]
            if size != out.size:
                raise UnsafeRecord(
                    f"refusing to restore {out.path}: blob {out.blob[:12]} has {size} bytes, "
                    f"the record says {out.size}"
                )
            total += size
        if total > limits.max_bytes:
            raise UnsafeRecord(
                f"refusing to restore {total} bytes: more than restore.max_bytes = "
                f"{limits.max_bytes}",
                hint="raise [restore] max_bytes in gitcache.toml if this is expected",
            )
        seen: set[str] = set()
        for out in files:
            if out.path in seen:
                raise UnsafeRecord(f"refusing to restore {out.path}: named twice")
            seen.add(out.path)
        for path in seen:  # writing a/b after a (a symlink, say) would write through it
            cut = path.find("/")
            while cut >= 0:  # each directory on the way, shortest first
                if path[:cut] in seen:
                    raise UnsafeRecord(
                        f"refusing to restore {path}: {path[:cut]} is also an output"
                    )
                cut = path.find("/", cut + 1)

    def _check_parents(
        self,
        rel: str,
        removing: set[str],
        verb: str = "restore",
        seen: dict[str, str] | None = None,
    ) -> bool:
        """A safe relative path, reached through real directories only; whether every
        directory on the way exists (else nothing is at `rel` either).

        A component that the plan removes first does not count: it will be gone.
        `seen` keeps what each directory on the way is, and what each whole way is, for
        the next path of a batch.
        """
        try:
            check_relative_path(rel)
        except ValueError as exc:
            raise UnsafeRecord(f"refusing to {verb} {rel!r}: {exc}") from None
        self._check_length(rel, verb)
        # The whole way to the parent, judged for a path before: once per directory of a
        # batch, not per file (the key is "" or ends in "/": never a prefix's key).
        way = rel[: rel.rfind("/") + 1]
        if seen is not None and way in seen:
            return seen[way] == "dir"
        parts = rel.split("/")
        prefix = ""
        for part in parts[:-1]:
            prefix = f"{prefix}/{part}" if prefix else part
            kind = None if seen is None else seen.get(prefix)
            if kind is None:
                kind = self._kind_on_the_way(prefix, removing)
                if seen is not None:
                    seen[prefix] = kind
            if kind == "dir":
                continue
            if kind == "gone":
                if seen is not None:
                    seen[way] = "gone"
                return False
            if kind == "link":
                raise UnsafeRecord(
                    f"refusing to {verb} {rel}: {prefix} is a symlink, and going through it "
                    "could leave the worktree"
                )
            raise UnsafeRecord(f"refusing to {verb} {rel}: {prefix} is a file")
        if seen is not None:
            seen[way] = "dir"
        return True

    def _check_length(self, rel: str, verb: str) -> None:
        """A name git holds but the file system cannot (ENAMETOOLONG) would fail only
        when written, after other files: refused with the checks instead."""
        # An ASCII path's length is its length in bytes (the common case: no encoding).
        size = len(rel) if rel.isascii() else len(os.fsencode(rel))
        if size + self._root_size + 1 >= _PATH_MAX or (
            size > _NAME_MAX and any(len(p) > _NAME_MAX for p in os.fsencode(rel).split(b"/"))
        ):
            shown = shown_path(rel)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise UnsafeRecord(
                f"refusing to {verb} {shown}: the path is too long for the file system"
            )

    def _kind_on_the_way(self, prefix: str, removing: set[str]) -> str:
        if prefix in removing:
            return "gone"
        try:
            st = os.lstat(f"{self.root}/{prefix}")
        except (FileNotFoundError, NotADirectoryError):
            return "gone"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        return "dir" if stat.S_ISDIR(st.st_mode) else "file"

    def _target(
        self, out: OutputFile, removing: set[str], seen: dict[str, str] | None = None
    ) -> tuple[str, bool]:
        """Where `out` goes, and whether nothing is there now. A directory there is
        allowed only when the plan's removals leave it empty (its files were checked,
        and `_write` then removes only empty directories); a directory holding anything
        else is a WorktreeConflict naming it."""
        on_the_way = self._check_parents(out.path, removing, seen=seen)
        target = f"{self.root}/{out.path}"
        if not on_the_way:  # a directory on the way is missing, or will be removed
            return target, True
        try:
            is_dir = stat.S_ISDIR(os.lstat(target).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return target, True
        if is_dir:
            kept = self._left_in(out.path, removing)
            if kept is not None:
                raise WorktreeConflict(
                    f"cannot restore file {out.path}: a directory is there, holding {kept}",
                    hint="move the directory away, or remove it if you do not need it",
                )
        return target, False

    def _left_in(self, rel_dir: str, removing: set[str]) -> str | None:
        """Something under the directory `rel_dir` that the plan does not remove, if any."""
        for dirpath, dirs, names in walk(self.root / rel_dir):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in names + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                if f"{rel}/{name}" not in removing:
                    return f"{rel}/{name}"
            if any(_is_dot_git(d) for d in dirs):
                return f"{rel}/.git"
        return None

    def _check_dir(self, rel: str, removing: set[str], seen: dict[str, str] | None = None) -> None:
        self._check_parents(rel, removing, seen=seen)
        path = self.root / rel
        if rel not in removing and path.is_symlink():
            raise UnsafeRecord(f"refusing to restore {rel}: a symlink is in the way")

    def _check_link(self, out: OutputFile, links: Mapping[str, str], planned: set[str]) -> None:
        """A symlink output may point anywhere inside the worktree except into a `.git`.

        Judged on its text, then resolved as the kernel will once the batch is written:
        through symlinks already in the worktree and the batch's own (`links`: path ->
        text), with the paths the batch writes as files or removes (`planned`) taken as
        plain files whatever is there now. A loop of links is refused.
        """
        link = links[out.path]
        where = f"refusing to restore {out.path}"
        if not link or "\0" in link:
            raise UnsafeRecord(f"{where}: symlink text {link!r} is not a path")
        if os.path.isabs(link):
            raise UnsafeRecord(f"{where}: symlink to {link!r} is an absolute path")
        if len(os.fsencode(link)) >= _PATH_MAX:  # symlink(2) would refuse it mid-restore
            raise UnsafeRecord(f"{where}: symlink text too long ({len(link)} characters)")
        resolved = os.path.normpath(os.path.join(os.path.dirname(out.path), link))
        if resolved == ".." or resolved.startswith("../"):
            raise UnsafeRecord(f"{where}: symlink to {link!r} leaves the worktree")
        if any(_is_dot_git(part) for part in [*resolved.split("/"), *link.split("/")]):
            raise UnsafeRecord(f"{where}: symlink into .git ({link!r})")
        if not self._resolves_inside(out.path, links, planned):
            raise UnsafeRecord(f"{where}: symlink to {link!r} leads out of the worktree")

    def _resolves_inside(self, path: str, links: Mapping[str, str], planned: set[str]) -> bool:
        """Whether the link at `path` leads under the root; UnsafeRecord if into a `.git`.

        One component at a time, as the kernel resolves it, so `up/../x` where `up` is a
        link goes to the parent of `up`'s target. A `.git` anywhere on the way counts,
        even if `..` leaves it again, and so does the repository's git directory.
        """
        where = f"refusing to restore {path}"
        root = Path(os.path.realpath(self.root))
        git_dir = Path(os.path.realpath(self.repo.git_dir))
        parts = path.split("/")[:-1]
        pending = links[path].split("/")
        hops = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if not parts:
                    return False
                parts.pop()
                continue
            if _is_dot_git(name):
                raise UnsafeRecord(f"{where}: symlink into .git (through {'/'.join(parts)})")
            parts.append(name)
            rel = "/".join(parts)
            text = links.get(rel)
            if text is None and rel not in planned:
                try:
                    text = self._existing_link(rel)
                except OSError as exc:  # ENAMETOOLONG: a path that cannot be checked
                    raise UnsafeRecord(
                        f"{where}: symlink cannot be resolved: {exc.strerror}"
                    ) from None
            if text is None:
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise UnsafeRecord(f"{where}: symlink loop at {rel}")
            parts.pop()
            if os.path.isabs(text):  # only a link already in the worktree can be absolute
                real = Path(os.path.realpath(text))
                if real == git_dir or git_dir in real.parents:
                    raise UnsafeRecord(f"{where}: symlink into .git (through {rel})")
                if real != root and root not in real.parents:
                    return False
                parts, text = [], real.relative_to(root).as_posix()
            pending = text.split("/") + pending
        return True

    def _existing_link(self, rel: str) -> str | None:
        """The text of a symlink at `rel` in the worktree now, or None."""
        try:
            if stat.S_ISLNK(os.lstat(self.root / rel).st_mode):
                return os.readlink(self.root / rel)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return None

    def _write(
        self,
        out: OutputFile,
        target: Path,
        chunks: ChunkIds,
        progress: Meter | None = None,
        link: str | None = None,
        umask: int = 0o022,
        packed: PackedBlobs | None = None,
    ) -> None:
        """Write one file through a temporary file renamed over whatever is there
        (`link`: a symlink's text, read already for the checks)."""
        # Its directory exists (apply made each once). One lstat: a directory where the
        # file goes was emptied by the removals (checked), a link is replaced as a file.
        try:
            here = os.lstat(target).st_mode
        except FileNotFoundError:
            here = 0
        if stat.S_ISDIR(here):
            for dirpath, _dirs, _names in walk(target, topdown=False):
                os.rmdir(dirpath)  # empty directories only: never rmtree what was not checked
        if out.mode == MODE_LINK:
            # Cut to NAME_MAX: a link with a long name (checked to fit) is still made.
            name = os.fsencode(f".gitcache-tmp-{os.getpid()}-{target.name}")[:_NAME_MAX]
            tmp = os.path.join(target.parent, os.fsdecode(name))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            assert link is not None  # apply read every link's text for its checks
            os.symlink(link, tmp)
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".gitcache-tmp-")
            try:
                try:
                    self._write_content(fd, out, chunks, progress, packed)
                finally:
                    os.close(fd)
                os.chmod(tmp, _file_mode(out, umask))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        os.replace(tmp, target)
        self.cache.remember(out.path, os.lstat(target), out.blob)

    def _second_share(
        self,
        targets: Sequence[tuple[OutputFile, str, bool]],
        in_place: Sequence[int],
        packed: PackedBlobs | None,
    ) -> list[int]:
        """The positions of the files a second process writes (forkedwriter.py): the
        second half of the small files written in place (`in_place`: their positions)
        whose blobs are in the packs, when they are many and a process may be forked;
        else none."""
        if packed is None or not forkedwriter.usable(len(in_place)):
            return []
        small = [
            position
            for position in in_place
            if targets[position][0].size <= _PACKED_MAX and packed.has(targets[position][0].blob)
        ]
        if len(small) < forkedwriter.MIN_FILES:
            return []
        return small[len(small) // 2 :]  # in path order: mostly directories of its own

    def _second_writes(
        self,
        handed: Sequence[int],
        targets: Sequence[tuple[OutputFile, str, bool]],
        slots: Sequence[int],
        chunks: ChunkIds,
        journal: Journal,
        umask: int,
        packed: PackedBlobs,
    ) -> forkedwriter.WriteItem:
        """What the second process does with the k-th file of `handed`: write it as
        `_write_new` does and give the numbers of its fstat; None to leave it to us."""

        def write(index: int) -> list[int] | None:
            out, target, _ = targets[handed[index]]
            pieces = packed.blob(out.blob)
            if pieces is None:  # read here through libgit2, which a fork may not use
                return None
            st = self._write_new(
                out, target, chunks, None, journal, slots[handed[index]], umask, packed, pieces
            )
            return None if st is None else stat_numbers(st)

        return write

    def _write_new(
        self,
        out: OutputFile,
        target: str,
        chunks: ChunkIds,
        progress: Meter | None,
        journal: Journal,
        slot: int,
        umask: int,
        packed: PackedBlobs | None = None,
        pieces: list[memoryview] | None = None,
    ) -> os.stat_result | None:
        """Write a file that is absent straight at its path (O_EXCL: never over anything,
        never through a symlink), with mode 000 until its bytes are in, each step noted in
        the journal's `slot`; its fstat once done, None if something is there now (then
        `_write` does it). A small file's bytes (`pieces`, if read already) are read and
        checked before the file is made."""
        if out.size <= _PACKED_MAX:
            pieces = self._checked(out, chunks, packed, pieces)
        journal.begin(slot)
        try:
            fd = os.open(target, _CREATE, 0)
        except FileExistsError:
            journal.skip(slot)
            return None
        try:
            journal.created(slot, os.fstat(fd))
            if pieces is None:
                self._write_content(fd, out, chunks, progress, packed)
            else:
                write_pieces(fd, pieces)
                if progress is not None:
                    progress.add(out.size)
            os.fchmod(fd, _file_mode(out, umask))
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(target)
            except FileNotFoundError:
                pass
            except OSError:
                journal.keep = True  # `recover` removes it later
            raise
        os.close(fd)
        journal.done(slot)
        return st

    def _checked(
        self,
        out: OutputFile,
        chunks: ChunkIds,
        packed: PackedBlobs | None,
        pieces: list[memoryview] | None = None,
    ) -> list[memoryview]:
        """A small whole file's bytes (`pieces` if read already; else from its pack when
        `packed` has it), refused unless they are the record's blob."""
        if pieces is None and packed is not None:
            pieces = packed.blob(out.blob)
        if pieces is None:
            pieces = self.repo.blob_pieces(out.blob, False)  # not checked: hashed here
        digest = blob_hasher(out.size)
        for_each(digest.update, pieces)
        _check(out, chunks, digest, sum(map(len, pieces)))
        return pieces

    def _write_content(
        self,
        fd: int,
        out: OutputFile,
        chunks: ChunkIds,
        progress: Meter | None = None,
        packed: PackedBlobs | None = None,
    ) -> None:
        """A file's bytes into `fd`, one blob at a time, each written from views of the
        object (no copy), hashed on the way: a file whose blob id is not the record's
        (chunks that do not make it, a corrupt object) is refused. `packed`: where many
        small blobs are read from first."""
        digest = blob_hasher(out.size)
        written = progress_at = 0
        loose = out.chunks is not None or out.size > _PACKED_MAX  # else likely in a pack
        with _hashing(digest, threaded=out.chunks is not None) as hash_pieces:
            for oid in chunks.blobs(out):
                pieces = None if packed is None or loose else packed.blob(oid)
                if pieces is None:
                    pieces = self.repo.blob_pieces(oid, loose)  # not checked: hashed here
                written += sum(map(len, pieces))
                hash_pieces(pieces)
                write_pieces(fd, pieces)
                del pieces  # the object's memory goes once both are done with it
                if progress is not None:
                    progress.add(written - progress_at)
                    progress_at = written
        _check(out, chunks, digest, written)


_SMALL_MAX = 64 * 2**10  # bytes: a file stored in one read (_store_small)
_LIST_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_SMALL = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # never a fifo
_ONE_PASS_MIN = 64  # small blobs to restore that make reading their packs worth it
_PACKED_MAX = 256 * 2**10  # objects/writer.py's PACKED_MAX (not imported by a no-op)
_WHOLE_MAX = 16 * 2**20  # objects/chunking.py's CHUNK_THRESHOLD: a bigger file is chunks
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _in_place(out: OutputFile) -> bool:
    """Written in place when absent: a whole file (a link is made whole by symlink, and
    a chunked file, whose blob id is known only at its end, goes through a temporary
    file as before: its bytes never show at its path until they are checked)."""
    return out.mode != MODE_LINK and out.chunks is None


def _journal(state_dir: Path, paths: Sequence[str]) -> Journal | None:
    """A journal for writing `paths` in place; None (each file through a temporary one,
    as before) where the git dir takes no file: read-only, say."""
    try:
        return Journal(state_dir, paths)
    except OSError as exc:
        if no_space(exc):
            raise  # the restore itself would find no room either: said as such
        return None


@contextlib.contextmanager
def _writing(verb: str, rel: str) -> Iterator[None]:
    """`_write_refused` for the writes of the block."""
    try:
        yield
    except OSError as exc:
        raise _write_refused(verb, rel, exc) from None


def _write_refused(verb: str, rel: str, exc: OSError) -> Exception:
    """The worktree refusing a write (EACCES, EPERM: a read-only or immutable directory,
    EROFS) as a StepFailed naming the path, not an internal error; a full disk as a
    DiskFull naming it too (a write to a file descriptor carries no file name)."""
    message = f"cannot {verb} {shown_path(rel)}: {exc.strerror or exc}"
    if no_space(exc):
        return DiskFull(message, hint="free some disk space and run again")
    return StepFailed(
        message,
        hint="make the worktree writable there, then run again",
    )


def _check(out: OutputFile, chunks: ChunkIds, digest: hashlib._Hash, size: int) -> None:
    """Refuse bytes that are not the record's blob (size and blob id), naming both."""
    if size != out.size or digest.hexdigest() != out.blob:
        raise _refused(out, chunks, digest.hexdigest(), size)


def _file_mode(out: OutputFile, umask: int) -> int:
    """The permissions a restored file gets, as git checkout gives them."""
    return (0o777 if out.mode == MODE_EXEC else 0o666) & ~umask


def _refused(out: OutputFile, chunks: ChunkIds, found: str, size: int) -> UnsafeRecord:
    what = "its chunks do not make" if out.chunks is not None else "it is not"
    return UnsafeRecord(
        f"refusing to restore {out.path} from record {chunks.record[:12] or '?'}: "
        f"{what} blob {out.blob[:12]} of {out.size} bytes (found blob {found[:12]}, "
        f"{size} bytes)"
    )


@contextlib.contextmanager
def _hashing(digest: hashlib._Hash, threaded: bool) -> Iterator[Callable[[list[memoryview]], None]]:
    """A function feeding a blob's pieces to `digest`, in order. `threaded` (a file in
    chunks): a thread of its own hashes them while the caller writes them (hashlib and
    os.write release the GIL), at most _HASH_AHEAD chunks behind; the block's end waits
    for it."""
    if not threaded:
        yield lambda pieces: for_each(digest.update, pieces)
        return
    waiting: queue.Queue[list[memoryview] | None] = queue.Queue(maxsize=_HASH_AHEAD)
    failed: list[BaseException] = []

    def run() -> None:
        while (pieces := waiting.get()) is not None:
            try:
                if not failed:
                    for_each(digest.update, pieces)
            except BaseException as exc:  # handed to the caller
                failed.append(exc)
            del pieces

    thread = threading.Thread(target=run, name="gitcache-restore-hash", daemon=True)
    start_quiet(thread)
    try:
        yield waiting.put
    finally:
        waiting.put(None)
        thread.join()
    if failed:
        raise failed[0]


_HASH_AHEAD = 2  # chunks (<= 8 MiB each) the hashing thread may lag behind the writes


def for_each(call: Callable[[memoryview], object], pieces: Iterable[memoryview]) -> None:
    for piece in pieces:
        call(piece)


def _unreadable_dir(rel_dir: str, exc: OSError) -> UnreadableFile:
    return UnreadableFile(f"cannot read directory {rel_dir}: {exc.strerror}")


def _check_output_path(rel: str) -> None:
    """StepFailed if no record may hold output path `rel`."""
    try:
        check_relative_path(rel)
    except ValueError:
        if not is_utf8(rel):
            raise StepFailed(_not_utf8(rel, "output")) from None
        raise StepFailed(
            f"cannot record output {rel!r}: a record may not hold this path "
            "(no backslash, NUL, empty, '.', '..' or '.git' component)"
        ) from None


def _not_utf8(rel: str, what: str) -> str:
    return (
        f"{shown_path(rel)}: path is not valid UTF-8; a record holds {what} paths as UTF-8 "
        "text, so rename it"
    )


def _scope_of(path: str, scopes: Container[str]) -> str | None:
    """The scope that is `path` or holds it, if any."""
    while path not in scopes:
        cut = path.rfind("/")
        if cut < 0:
            return None
        path = path[:cut]
    return path


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A directory, or a symlink to one (False for a dangling link or a loop of links)."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _is_dot_git(name: str) -> bool:
    return name.casefold().rstrip(". ") == ".git"


def _conflict(
    lost: Sequence[str], recorded: Mapping[str, OutputFile], step: str, hint: str | None
) -> WorktreeConflict:
    first = lost[0]
    more = (
        f" (and {len(lost) - 1} more file{'s' if len(lost) > 2 else ''})" if len(lost) > 1 else ""
    )
    if first in recorded:
        what = f"overwrite {first}{more}, which was modified and is"
    else:
        what = f"remove {first}{more}, which is"
    return WorktreeConflict(
        f"restore would {what} in no record of step {step!r}",
        hint=hint or "use --force to overwrite it, or move it away",
    )


def _umask() -> int:
    """The process's umask: from /proc where it is there (setting it to read it, as
    os.umask does, could race with another thread creating a file)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

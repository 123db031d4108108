"""The worktree: expanding inputs, blob ids through the stat cache, restoring outputs.

Restoring writes only files that a record names after every path has been checked:
relative, no `..`, nothing in `.git`, no existing symlinked directory on the way, no
output used as a directory by another, no symlink pointing out of the worktree (also
through symlinks already there), every blob present with the size the record says,
and the total within the limits. Checks come first, writes after, so a hostile
record writes nothing at all.
"""

from __future__ import annotations

import contextlib
import glob
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitcache.errors import UnsafeRecord
from gitcache.gitrepo import MODE_EXEC, MODE_LINK, GitRepo
from gitcache.record import OutputFile, check_relative_path
from gitcache.statcache import FileState, StatCache

GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class RestoreLimits:
    """The most one restore may write (gitcache.toml `[restore]`), whatever a record says."""

    max_files: int = 100_000
    max_bytes: int = 10 * 2**30


@dataclass(frozen=True)
class Expansion:
    files: list[str]  # sorted, unique, posix, relative to the root
    missing: list[str]  # declared patterns that matched nothing


class Worktree:
    def __init__(
        self, repo: GitRepo, cache: StatCache, limits: RestoreLimits | None = None
    ) -> None:
        self.repo = repo
        self.root = repo.root
        self.cache = cache
        self.limits = limits or RestoreLimits()

    def state(self, rel: str) -> FileState | None:
        return self.cache.state(self.root, rel)

    def expand(self, patterns: Iterable[str]) -> Expansion:
        """Files named by paths, directories (recursively) and globs."""
        files: set[str] = set()
        missing: list[str] = []
        for pattern in patterns:
            found = self._expand_one(pattern)
            if found:
                files.update(found)
            else:
                missing.append(pattern)
        return Expansion(sorted(files), missing)

    def _expand_one(self, pattern: str) -> list[str]:
        if GLOB_CHARS & set(pattern):
            matches = glob.glob(pattern, root_dir=self.root, recursive=True)
            return [f for m in matches for f in self._expand_one(Path(m).as_posix())]
        path = self.root / pattern
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        if not stat.S_ISDIR(st.st_mode):
            return [pattern]
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found.extend(f"{rel_dir}/{name}" for name in filenames)
        return found

    def output_states(self, outputs: Sequence[str]) -> dict[str, FileState | None]:
        """Each file of each declared output (a directory gives its files); None if missing."""
        states: dict[str, FileState | None] = {}
        for declared in outputs:
            files = self._expand_one(declared)
            if not files:
                states[declared] = None
            for rel in files:
                states[rel] = self.state(rel)
        return states

    # -- restoring -------------------------------------------------------------------

    def restore(
        self, files: Sequence[OutputFile], progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Write files from git into the worktree, all checks before any write."""
        self._check_set(files)
        plans = [(f, self._target(f)) for f in files]
        for out in files:
            if out.mode == MODE_LINK:
                self._check_link(out)
        for done, (out, target) in enumerate(plans):
            if progress is not None:
                progress(done, len(plans))
            self._write(out, target)

    def _check_set(self, files: Sequence[OutputFile]) -> None:
        """Limits, blobs as the record describes them, and no path under another."""
        limits = self.limits
        if len(files) > limits.max_files:
            raise UnsafeRecord(
                f"refusing to restore {len(files)} files: more than restore.max_files = "
                f"{limits.max_files}",
                hint="raise [restore] max_files in gitcache.toml if this is expected",
            )
        total = 0
        for out in files:
            if not self.repo.has_object(out.blob):
                raise UnsafeRecord(f"refusing to restore {out.path}: blob {out.blob} is missing")
            size = self.repo.blob_size(out.blob)
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
            parts = path.split("/")
            for n in range(1, len(parts)):
                if "/".join(parts[:n]) in seen:
                    raise UnsafeRecord(
                        f"refusing to restore {path}: {'/'.join(parts[:n])} is also an output"
                    )

    def _target(self, out: OutputFile) -> Path:
        try:
            check_relative_path(out.path)
        except ValueError as exc:
            raise UnsafeRecord(f"refusing to restore {out.path!r}: {exc}") from None
        current = self.root
        for part in out.path.split("/")[:-1]:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                break
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeRecord(
                    f"refusing to restore {out.path}: {current.relative_to(self.root)} "
                    "is a symlink, and writing through it could leave the worktree"
                )
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeRecord(
                    f"refusing to restore {out.path}: {current.relative_to(self.root)} is a file"
                )
        target = self.root / out.path
        if target.is_dir() and not target.is_symlink():
            raise UnsafeRecord(f"refusing to restore {out.path}: a directory is in the way")
        return target

    def _check_link(self, out: OutputFile) -> None:
        link = os.fsdecode(self.repo.read_blob(out.blob))
        resolved = os.path.normpath(os.path.join(os.path.dirname(out.path), link))
        if os.path.isabs(link) or resolved == ".." or resolved.startswith("../"):
            raise UnsafeRecord(
                f"refusing to restore {out.path}: symlink to {link!r} leaves the worktree"
            )
        # Lexically inside, but symlinks already in the worktree may lead elsewhere.
        real = Path(os.path.realpath(self.root / os.path.dirname(out.path) / link))
        if real != self.root and self.root not in real.parents:
            raise UnsafeRecord(
                f"refusing to restore {out.path}: symlink to {link!r} leads out of the worktree"
            )
        inside = real.relative_to(self.root).parts
        if (inside and _is_dot_git(inside[0])) or resolved.split("/")[0] == ".git":
            raise UnsafeRecord(f"refusing to restore {out.path}: symlink into .git")

    def _write(self, out: OutputFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.repo.read_blob(out.blob)
        if out.mode == MODE_LINK:
            tmp = str(target.parent / f".gitcache-tmp-{os.getpid()}-{target.name}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.fsdecode(data), tmp)
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".gitcache-tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.chmod(tmp, 0o777 & ~_umask() if out.mode == MODE_EXEC else 0o666 & ~_umask())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        os.replace(tmp, target)
        self.cache.remember(out.path, os.lstat(target), out.blob)


def _is_dot_git(name: str) -> bool:
    return name.casefold().rstrip(". ") == ".git"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

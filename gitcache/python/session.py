"""The repository a Python step records into, opened once per process and root.

A Python step has no `gitcache run` around it: the first call opens the git
repository that holds the current directory (as the CLI does) and its record
store; its worktree with the stat cache, and the workflow settings that concern
every run (`require_clean`, `dirty_ok`, `[restore]` limits) from `gitcache.toml`
when there is one, are read when first needed. What the process learned (stat
cache, record index) is saved at exit: all of it is cache, so a process that dies
first only costs reading things again. The normalized code forms are written as soon
as a step's code is computed (`Signer.code`): a process pool's workers end without
running atexit handlers.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from gitcache.errors import RepositoryError
from gitcache.gitread import GitDirs, find_repository
from gitcache.gitrepo import GitRepo
from gitcache.python.code import FORMS_DIR, FormCache, known_real_root
from gitcache.store import RecordStore

# Not typing.TYPE_CHECKING (see gitcache/__init__.py). The workflow file's parser and the
# worktree (stat cache, restoring) are imported when first needed: a hit on a call
# without File arguments or outputs needs neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from gitcache.workflow import WorkflowFile
    from gitcache.worktree import Worktree


class GitcacheWarning(UserWarning):
    """Something a user of Python steps should know (filter with the warnings module)."""


def warn(message: str) -> None:
    warnings.warn(message, GitcacheWarning, stacklevel=3)


@dataclass
class Session:
    """One repository's state in this process. `dirs` is where its files are; the
    repository itself (libgit2) and its record store are opened on first use: a hit
    in a new process reads its record without them (python/quick.py)."""

    dirs: GitDirs
    # Held while this process uses git, the stat cache or the store (pygit2 objects are
    # not safe to share between threads); released while a step's function runs.
    lock: threading.RLock = field(default_factory=threading.RLock)
    # The remote asked on a local miss: `gitcache run TASKS --remote NAME` sets it; else
    # `remote = "..."` of gitcache.toml, as for shell steps.
    remote_name: str | None = None

    _repo: GitRepo | None = None
    _store: RecordStore | None = None

    @cached_property
    def root(self) -> Path:
        return Path(self.dirs.root)

    @cached_property
    def state_dir(self) -> Path:
        """gitcache's directory in the common git dir (as `GitRepo.state_dir`)."""
        return Path(self.dirs.common_dir) / "gitcache"

    @property
    def repo(self) -> GitRepo:
        if self._repo is None:
            with self.lock:
                if self._repo is None:
                    self._repo = _open(self.dirs)
        return self._repo

    @property
    def store(self) -> RecordStore:
        if self._store is None:
            repo = self.repo
            with self.lock:
                if self._store is None:
                    self._store = RecordStore(repo, warn)
        return self._store

    # The workflow settings and the stat cache are read on first use: a hit on a call
    # without File arguments or outputs needs neither.
    @cached_property
    def config(self) -> WorkflowFile:
        return _settings(self.repo.root)

    @cached_property
    def worktree(self) -> Worktree:
        from gitcache.journal import recover
        from gitcache.statcache import StatCache
        from gitcache.worktree import RestoreLimits, Worktree

        recover(self.repo.root, self.repo.worktree_state_dir)  # a killed restore's files
        limits = RestoreLimits(self.config.restore.max_files, self.config.restore.max_bytes)
        return Worktree(self.repo, StatCache(self.repo.worktree_state_dir), limits)

    @cached_property
    def forms(self) -> FormCache:
        """Normalized code forms, kept across processes (python-code-v1/)."""
        return FormCache(self.state_dir / FORMS_DIR)

    @cached_property
    def remote_lookup(self) -> Callable[[str], bool] | None:
        """Fetches a signature's record from the remote on a local miss (True: one came),
        or None when no remote is set. A remote that does not exist is said once."""
        name = self.remote_name or self.config.remote
        if name is None:
            return None
        from gitcache.errors import RemoteError
        from gitcache.remote import choose_remote
        from gitcache.sharing import RemoteLookup

        try:
            remote = choose_remote(self.repo, name, cwd=self.root)
        except RemoteError as exc:
            warn(f"{exc.message}; Python steps go on without the remote")
            return None
        return RemoteLookup(self.store, remote, warn)

    def save(self) -> None:
        with self.lock:
            if "worktree" in self.__dict__:
                self.worktree.cache.save()
            if "forms" in self.__dict__:
                self.forms.save()
            if self._store is not None:
                self._store.flush_index()


_SESSIONS: dict[Path, Session] = {}
_OPENING = threading.Lock()


def session_for(start: Path) -> Session:
    """The session of the repository holding `start` (opened on first use)."""
    with _OPENING:
        for root, session in _SESSIONS.items():
            if start == root or root in start.parents:
                return session
        # os.getcwd() has no symlinks in it: no realpath needed to walk up from it.
        text = str(start)
        dirs = find_repository(text if text == os.getcwd() else os.path.realpath(text))
        repo = None
        if dirs is None:  # a layout only libgit2 can tell: open the repository now
            repo = GitRepo.discover(start)
            dirs = GitDirs(str(repo.root), str(repo.git_dir), str(repo.common_dir))
        root = Path(dirs.root)
        found = _SESSIONS.get(root)
        if found is not None:
            return found
        session = Session(dirs, _repo=repo)
        _SESSIONS[root] = session
        known_real_root(root)
        if len(_SESSIONS) == 1:
            atexit.register(_save_all)
        return session


def forget_sessions() -> None:
    """Drop every open session (tests that make many repositories in one process)."""
    with _OPENING:
        _save_all()
        _SESSIONS.clear()


def _after_fork() -> None:
    """A forked child (a process pool's worker) opens its own repository and locks:
    libgit2 objects and locks held by other threads of the parent are not its own."""
    global _OPENING
    _SESSIONS.clear()
    _OPENING = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _open(dirs: GitDirs) -> GitRepo:
    """The repository (libgit2) at `dirs`, which must be where libgit2 finds it too."""
    repo = GitRepo.discover(Path(dirs.root))
    found = (str(repo.root), str(repo.git_dir), str(repo.common_dir))
    if found != (dirs.root, dirs.git_dir, dirs.common_dir):
        raise RepositoryError(
            f"gitcache found the repository of {dirs.root} at {dirs.git_dir}, "
            f"libgit2 at {repo.git_dir} (worktree {repo.root})"
        )
    return repo


def _settings(root: Path) -> WorkflowFile:
    from gitcache.workflow import WORKFLOW_FILE, WorkflowFile, load_workflow

    path = root / WORKFLOW_FILE
    if not path.exists():
        return WorkflowFile()
    return load_workflow(path, root).config


def _save_all() -> None:
    for session in list(_SESSIONS.values()):
        session.save()

"""Each step's latest record in a worktree: the record whose outputs the worktree holds.

In the main worktree it is the ref `refs/gitcache/step/<name>` (SPEC §4). A linked
worktree (`git worktree add`) has its own, in a file in its own git dir,
`gitcache/latest-records-v1.json` (step -> record commit), so that running a step
in one worktree does not change what another's `status`, `show STEP` or `gc` take
as that step's latest record.

Why a file and not git's per-worktree refs (`refs/worktree/...`): libgit2 reads and
writes those correctly, but `git gc` run in the main worktree (git 2.39) does not
count a linked worktree's per-worktree refs as reachable, so it would prune a
record only such a ref holds and leave a broken ref that makes every later `git gc`
in that worktree fail. An entry in the file that names a commit git has pruned is
only a step without a latest record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from gitcache.gitrepo import GitRepo, RefUpdate
from gitcache.scratch import temp_prefix
from gitcache.sweeps import item_id

STEP_PREFIX: Final = "refs/gitcache/step/"
# Latest record of each sweep item: refs/gitcache/item/<step>/<16 hex of its values>.
ITEM_PREFIX: Final = "refs/gitcache/item/"
LATEST_FILE: Final = "latest-records-v1.json"


def step_ref(step: str) -> str:
    return STEP_PREFIX + step


def item_ref(step: str, values: Mapping[str, Any]) -> str:
    """The latest-record ref of a sweep item (a valid ref name whatever its values)."""
    return f"{ITEM_PREFIX}{step}/{item_id(values)}"


def latest_key(step: str, item: Mapping[str, Any] | None = None) -> str:
    """What names a step's (or a sweep item's) latest record: the ref name minus its
    prefix, also the key in a linked worktree's file (step names hold no `/`)."""
    return step if item is None else f"{step}/{item_id(item)}"


def _ref(key: str) -> str:
    return (ITEM_PREFIX if "/" in key else STEP_PREFIX) + key


def key_step(key: str) -> str:
    """The step a latest key belongs to."""
    return key.split("/", 1)[0]


class LatestRecords:
    """The latest-record pointers of the worktree a GitRepo was opened in."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.in_refs = not repo.is_linked_worktree  # else in a file
        self._file = repo.worktree_state_dir / LATEST_FILE

    def get(self, key: str) -> str | None:
        """The latest record of a `latest_key` (a step, or one item of a sweep)."""
        if self.in_refs:
            return self.repo.ref_target(_ref(key))
        commit = read_file(self._file).get(key)
        return commit if commit is not None and self.repo.has_object(commit) else None

    def ref_update(self, key: str, commit: str) -> RefUpdate | None:
        """The ref update setting it, to join a record's transaction (None: not a ref)."""
        return RefUpdate(_ref(key), commit) if self.in_refs else None

    def set(self, key: str, commit: str) -> None:
        self.set_many([(key, commit)])

    def set_many(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Set several keys (the last of a key wins): a linked worktree's file is
        rewritten once, not once per key (a sweep's hundred items per batch)."""
        pairs = list(pairs)
        if self.in_refs:
            for key, commit in pairs:
                if self.repo.ref_target(_ref(key)) != commit:
                    self.repo.update_refs([RefUpdate(_ref(key), commit)], "gitcache: latest")
            return
        if not pairs:
            return
        with _updating(self._file) as steps:
            for key, commit in pairs:
                steps[key] = commit


def read_file(path: Path) -> dict[str, str]:
    """The step -> commit entries of a latest-records file (empty when absent or damaged)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    steps = data.get("steps") if isinstance(data, dict) and data.get("version") == 1 else None
    if not isinstance(steps, dict):
        return {}
    return {str(k): str(v) for k, v in steps.items() if isinstance(v, str)}


def linked_files(repo: GitRepo) -> list[Path]:
    """The latest-records file of every linked worktree of the repository."""
    return [d / LATEST_FILE for d in repo.worktree_state_dirs() if d != repo.state_dir]


def everywhere(repo: GitRepo) -> dict[str, str]:
    """Record commit -> step, for the latest record of every step and sweep item in
    every worktree."""
    found = {commit: name.removeprefix(STEP_PREFIX) for name, commit in repo.refs(STEP_PREFIX)}
    for name, commit in repo.refs(ITEM_PREFIX):
        found.setdefault(commit, key_step(name.removeprefix(ITEM_PREFIX)))
    for path in linked_files(repo):
        for key, commit in read_file(path).items():
            found.setdefault(commit, key_step(key))
    return found


def move_in_files(repo: GitRepo, moves: Mapping[str, tuple[set[str], str | None]]) -> None:
    """In every linked worktree, a latest key (step or item) whose latest is among
    `moves[key][0]` gets `moves[key][1]` instead (or none)."""
    for path in linked_files(repo):
        if not any(c in moves.get(s, (set(), None))[0] for s, c in read_file(path).items()):
            continue
        with _updating(path) as steps:
            for step, (gone, newest) in moves.items():
                if steps.get(step) in gone:
                    if newest is None:
                        del steps[step]
                    else:
                        steps[step] = newest


@contextmanager
def _updating(path: Path) -> Iterator[dict[str, str]]:
    """Read, change and atomically replace the file, under a flock (one writer at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        steps = read_file(path)
        yield steps
        payload = json.dumps({"version": 1, "steps": steps}, sort_keys=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix("latest"))
        try:
            with os.fdopen(handle, "w") as out:
                out.write(payload)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    finally:
        os.close(fd)

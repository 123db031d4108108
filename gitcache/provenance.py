"""Where a record's code came from: the source commit, dirty files, a snapshot tree.

A record is a child of the commit that was HEAD when its step ran (SPEC §6). When
tracked files differ from HEAD, the run is dirty: the record lists the files and
keeps the whole tracked worktree as a tree (`worktree/` in the record's tree), so the
exact code that ran can be checked out again. `dirty_ok` directories do not make a
run dirty (as Sumatra's); `require_clean = true` refuses to run instead.
Untracked files never count.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from gitcache.errors import DirtyWorktree
from gitcache.gitrepo import MODE_TREE, GitRepo, TreeEntry
from gitcache.workflow import WorkflowFile

SNAPSHOT_DIR: Final = "worktree"
_RACY_NS: Final = 100_000_000  # a file this much older than a status keeps its stat
_LISTED: Final = 10  # changed files named in a refusal


@dataclass(frozen=True)
class Provenance:
    source_commit: str | None  # None: HEAD is unborn
    dirty_files: tuple[str, ...]
    snapshot: str | None  # tree id of the tracked worktree, when dirty

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_files)

    def tree_entries(self) -> list[TreeEntry]:
        """What the record's tree holds besides record.json, outputs and logs."""
        if self.snapshot is None:
            return []
        return [TreeEntry(SNAPSHOT_DIR, self.snapshot, MODE_TREE)]


def exempt(path: str, dirty_ok: Sequence[str]) -> bool:
    """Whether a changed path lies in (or is) one of the `dirty_ok` entries."""
    for entry in dirty_ok:
        prefix = entry.strip("/")
        if prefix in ("", ".") or path == prefix or path.startswith(prefix + "/"):
            return True
    return False


class Sources:
    """The provenance of each step of one run, captured again only when it may differ.

    A status of the tracked files costs ~0.1 ms in a small repository and tens of
    milliseconds with 10,000 files: for every item of a sweep it would cost more than
    the items. So it is re-used while HEAD, the index and every changed file keep their
    stat (`GitRepo.source_state`), and captured again after a command wrote a tracked
    file among its outputs, or failed (`forget`). A command that writes a tracked file
    it does not declare is seen by the next run. With `require_clean` every step is
    checked.
    """

    def __init__(self, repo: GitRepo, config: WorkflowFile) -> None:
        self._repo = repo
        self._config = config
        self._last: tuple[object, Provenance, tuple[str, ...]] | None = None

    def capture(self) -> Provenance:
        if self._config.require_clean:
            return capture(self._repo, self._config)
        if self._last is not None:
            state, known, changed = self._last
            if self._repo.source_state(changed) == state:
                return known
        began = time.time_ns()
        changed = tuple(self._repo.changed_tracked_files())
        known = _provenance(self._repo, self._config, changed)
        state = self._repo.source_state(changed)
        # Racily clean (as git's index): a file written within a timestamp tick of the
        # status could be written again with the same stat. Kept only when older.
        self._last = None if _recent(state, began - _RACY_NS) else (state, known, changed)
        return known

    def forget(self) -> None:
        self._last = None


def _recent(state: tuple[object, ...], since_ns: int) -> bool:
    """Whether any stat in a source state has an mtime or ctime at or after `since_ns`."""
    return any(isinstance(key, tuple) and max(key[0], key[1]) >= since_ns for key in state[1:])


def capture(repo: GitRepo, config: WorkflowFile) -> Provenance:
    """The provenance of a run starting now; raise DirtyWorktree if it may not run."""
    return _provenance(repo, config, repo.changed_tracked_files())


def _provenance(repo: GitRepo, config: WorkflowFile, changed: Sequence[str]) -> Provenance:
    head = repo.head_commit()
    dirty = tuple(p for p in changed if not exempt(p, config.dirty_ok))
    if config.require_clean:
        if head is None:
            raise DirtyWorktree(
                "require_clean = true, but HEAD has no commit yet",
                hint="commit your code first",
            )
        if dirty:
            shown = ", ".join(dirty[:_LISTED])
            more = f" and {len(dirty) - _LISTED} more" if len(dirty) > _LISTED else ""
            raise DirtyWorktree(
                f"require_clean = true and tracked files are changed: {shown}{more}",
                hint="commit or stash them, or list their directories in dirty_ok",
            )
    snapshot = repo.worktree_tree(changed) if dirty else None
    return Provenance(head, dirty, snapshot)


def checkout_commands(record_commit: str, source_commit: str | None, snapshot: bool) -> str | None:
    """The git commands that put the code a record ran with back into the worktree."""
    steps = []
    if source_commit is not None:
        steps.append(f"git switch --detach {source_commit[:12]}")
    if snapshot:
        # restore also deletes tracked files that the snapshot does not hold
        source = f"{record_commit[:12]}:{SNAPSHOT_DIR}"
        steps.append(f"git restore --source={source} --staged --worktree :/")
    return " && ".join(steps) or None

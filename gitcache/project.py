"""A Project: the repository, its workflow and the stores, opened once per command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gitcache.gitrepo import GitRepo
from gitcache.graph import StepGraph
from gitcache.hookpolicy import follow_policy
from gitcache.journal import recover
from gitcache.removed import RemovedOutputs
from gitcache.statcache import StatCache
from gitcache.store import RecordStore
from gitcache.workflow import WORKFLOW_FILE, Workflow, WorkflowFile, load_workflow
from gitcache.worktree import RestoreLimits, Worktree


@dataclass
class Project:
    repo: GitRepo
    workflow: Workflow
    store: RecordStore
    worktree: Worktree

    @classmethod
    def open(
        cls,
        start: Path,
        workflow_file: Path | None = None,
        warn: Callable[[str], None] | None = None,
        require_workflow: bool = True,
        note: Callable[[str], None] | None = None,
    ) -> Project:
        """Open the repository holding `start` and its workflow file.

        Without `require_workflow`, a missing default gitcache.toml is an empty
        workflow: commands that only manage records (log, show, diff, remove, gc)
        also work in a repository whose steps are all Python functions.

        Where gitcache's hooks are installed, the hook set is made to follow the
        root gitcache.toml's rewrite policy (hookpolicy.py); `note` hears what changed.
        """
        repo = GitRepo.discover(start)
        repo.on_wait = warn
        path = workflow_file if workflow_file is not None else repo.root / WORKFLOW_FILE
        if not require_workflow and workflow_file is None and not path.exists():
            workflow = Workflow(path, repo.root, WorkflowFile(), {}, {}, StepGraph.build("", {}))
        else:
            workflow = load_workflow(path if path.is_absolute() else start / path, repo.root)
            if workflow_file is None:  # the file the hooks read (never a -f one)
                hooks = workflow.config.hooks
                change = follow_policy(repo, hooks.rewrite, hooks.rewrite_given)
                if change is not None:
                    kind, message = change
                    tell = note if kind == "note" else warn
                    if tell is not None:
                        tell(message)
        # A killed restore's half-written files go before anything looks at outputs.
        recover(repo.root, repo.worktree_state_dir)
        cache = StatCache(repo.worktree_state_dir)  # about this worktree's files
        limits = RestoreLimits(workflow.config.restore.max_files, workflow.config.restore.max_bytes)
        return cls(repo, workflow, RecordStore(repo, warn), Worktree(repo, cache, limits))

    @cached_property
    def removed(self) -> RemovedOutputs:
        """Outputs removed from the worktree on purpose (`gitcache remove --outputs`)."""
        return RemovedOutputs(self.repo.worktree_state_dir)

    def save(self) -> None:
        """Persist what this process learned (the stat cache, removed outputs)."""
        self.worktree.cache.save()
        self.store.flush_index()
        if "removed" in self.__dict__:
            self.removed.save()

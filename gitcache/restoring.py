"""`gitcache restore`: put a record's outputs into the worktree.

The record is named by id, or by step: the record of the step's current signature
(with `-p` overrides), or with `--commit REV` the newest record made at REV or at
one of its ancestors. A worktree file is overwritten only if its content is held by
some record of the step (so nothing is lost) or with `force`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitcache.errors import ConfigError, RecordNotFound, WorktreeConflict
from gitcache.history import newest_first, param_matches
from gitcache.plan import Planner
from gitcache.project import Project
from gitcache.record import OutputFile
from gitcache.store import StoredRecord


@dataclass(frozen=True)
class RestoreResult:
    record: StoredRecord
    written: list[str]  # paths written
    unchanged: list[str]  # paths that already held the record's content


def find_record(
    project: Project, ident: str, commit: str | None, params: Mapping[str, Any]
) -> StoredRecord:
    steps = project.workflow.steps
    if ident not in steps:
        if commit is not None or params:
            raise ConfigError(
                f"--commit and -p choose among a step's records; {ident!r} is not a step",
                hint=f"steps: {', '.join(steps) or 'none'}",
            )
        return project.store.resolve(ident, list(steps))
    if commit is not None:
        return _at_commit(project, ident, commit, params)
    return _current(project, ident, params)


def _current(project: Project, step: str, params: Mapping[str, Any]) -> StoredRecord:
    workflow = project.workflow
    planner = Planner(project, {**workflow.params, **params}, os.environ)
    for name in workflow.select([step]):
        ev = planner.evaluate(name)
        if name != step:
            if ev.record is not None:
                planner.will_restore(ev)
            else:
                planner.will_change(name)
            continue
        if ev.unknown:
            raise RecordNotFound(
                f"step {step!r}: its signature depends on step {ev.unknown[0]}, which has no "
                "record for its current inputs",
                hint="give a record id (see `gitcache log`) or --commit",
            )
        if ev.missing:
            raise RecordNotFound(f"step {step!r}: input {ev.missing[0]} does not exist")
        if ev.record is None:
            given = " with " + ", ".join(f"{k}={v}" for k, v in params.items()) if params else ""
            raise RecordNotFound(
                f"step {step!r} has no record for its current signature{given}",
                hint=f"`gitcache log {step}` lists its records; restore one by id",
            )
        return ev.record
    raise AssertionError("unreachable: select() returns the step itself")


def _at_commit(project: Project, step: str, rev: str, params: Mapping[str, Any]) -> StoredRecord:
    repo = project.repo
    target = repo.resolve_commit(rev)
    candidates = [
        s
        for s in newest_first(project.store.summaries())
        if s.step == step
        and s.source_commit is not None
        and repo.has_object(s.source_commit)
        and all(param_matches(s.params, k, v) for k, v in params.items())
        and repo.is_descendant(target, s.source_commit)
    ]
    if not candidates:
        raise RecordNotFound(
            f"step {step!r} has no record made at {rev} or before it"
            + (" with those parameters" if params else ""),
            hint=f"`gitcache log {step}` lists its records",
        )
    # Records made at the commit itself come first, then the newest on its history.
    exact = [s for s in candidates if s.source_commit == target]
    return project.store.load((exact or candidates)[0].commit)


def restore_record(project: Project, stored: StoredRecord, force: bool) -> RestoreResult:
    """Write the record's outputs; refuse (before writing anything) to lose unrecorded work."""
    stored = project.store.verified(stored)
    worktree = project.worktree
    known = _recorded_blobs(project, stored.record.step)
    to_write: list[OutputFile] = []
    unchanged: list[str] = []
    for out in stored.record.outputs:
        state = worktree.state(out.path)
        if state is not None and state.oid == out.blob and state.mode == out.mode:
            unchanged.append(out.path)
            continue
        if state is not None and not force and state.oid not in known.get(out.path, set()):
            raise WorktreeConflict(
                f"restore would overwrite {out.path}, which was modified and is in no record "
                f"of step {stored.record.step!r}",
                hint="use --force to overwrite it, or move it away",
            )
        to_write.append(out)
    worktree.restore(to_write)
    project.removed.discard(o.path for o in stored.record.outputs)
    return RestoreResult(stored, [o.path for o in to_write], unchanged)


def _recorded_blobs(project: Project, step: str) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for summary in project.store.summaries():
        if summary.step == step:
            for path, blob in summary.outputs.items():
                known.setdefault(path, set()).add(blob)
    return known

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
from gitcache.history import item_matches, newest_first, param_matches
from gitcache.plan import Planner
from gitcache.project import Project
from gitcache.record import OutputFile
from gitcache.recordindex import RecordSummary
from gitcache.store import StoredRecord
from gitcache.sweeps import parse_selector, split_target


@dataclass(frozen=True)
class RestoreResult:
    record: StoredRecord
    written: list[str]  # paths written
    unchanged: list[str]  # paths that already held the record's content


def find_records(
    project: Project, ident: str, commit: str | None, params: Mapping[str, Any]
) -> list[StoredRecord]:
    """The record named by an id, a step, or sweep items (`train`, `'train[lr=0.1]'`:
    one record per item)."""
    steps = project.workflow.steps
    name, selector = split_target(ident)
    if name not in steps:
        if commit is not None or params:
            raise ConfigError(
                f"--commit and -p choose among a step's records; {ident!r} is not a step",
                hint=f"steps: {', '.join(steps) or 'none'}",
            )
        return [project.store.resolve(ident, list(steps))]
    if commit is not None:
        if steps[name].sweep is not None:
            return _items_at_commit(project, name, selector, commit, params)
        return [_at_commit(project, ident, commit, params)]
    return _current(project, ident, params)


def _current(project: Project, target: str, params: Mapping[str, Any]) -> list[StoredRecord]:
    workflow = project.workflow
    planner = Planner(project, {**workflow.params, **params}, os.environ)
    units = planner.units
    wanted = set(units.resolve([target]))
    found: list[StoredRecord] = []
    for name in planner.walk([target]):
        if name in units.dynamic:
            if name in wanted:
                raise RecordNotFound(
                    f"step {name!r}: its items are known once the steps it reads are up to date",
                    hint="run `gitcache run` first, or give a record id",
                )
            continue
        ev = planner.evaluate(name)
        step = name
        if name not in wanted and units.group.get(name) not in wanted:
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
                hint=f"`gitcache log {ev.step.name}` lists its records; restore one by id",
            )
        planner.will_restore(ev)
        found.append(ev.record)
    return found


def _items_at_commit(
    project: Project, step: str, selector: str | None, rev: str, params: Mapping[str, Any]
) -> list[StoredRecord]:
    """Per item of a sweep step, its newest record made at `rev` or before it."""
    repo = project.repo
    target = repo.resolve_commit(rev)
    template = project.workflow.steps[step]
    wanted = None if selector is None else parse_selector(template, selector)
    newest: dict[str, tuple[bool, RecordSummary]] = {}
    for s in newest_first(project.store.summaries()):
        if (
            s.step != step
            or s.item is None
            or s.source_commit is None
            or not repo.has_object(s.source_commit)
            or not all(param_matches(s.params, k, v) for k, v in params.items())
            or (wanted is not None and not item_matches(s.item, wanted))
            or not repo.is_descendant(target, s.source_commit)
        ):
            continue
        exact = s.source_commit == target
        kept = newest.get(s.label)
        if kept is None or (exact and not kept[0]):
            newest[s.label] = (exact, s)
    if not newest:
        raise RecordNotFound(
            f"step {step!r} has no item record made at {rev} or before it",
            hint=f"`gitcache log {step}` lists its records",
        )
    return [project.store.load(s.commit) for _exact, s in newest.values()]


def _at_commit(project: Project, step: str, rev: str, params: Mapping[str, Any]) -> StoredRecord:
    """The newest record of a plain step made at `rev` or before it."""
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


def restore_record(
    project: Project,
    stored: StoredRecord,
    force: bool,
    known: dict[str, set[str]] | None = None,
) -> RestoreResult:
    """Write the record's outputs; refuse (before writing anything) to lose unrecorded work.

    `known`: path -> blob ids some record of the step holds (`recorded_blobs`), when
    the caller restores several records of one step.
    """
    stored = project.store.verified(stored)
    worktree = project.worktree
    if known is None:
        known = recorded_blobs(project, stored.record.step)
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


def recorded_blobs(project: Project, step: str) -> dict[str, set[str]]:
    """path -> blob ids of that path in any record of the step."""
    known: dict[str, set[str]] = {}
    for summary in project.store.summaries():
        if summary.step == step:
            for path, blob in summary.outputs.items():
                known.setdefault(path, set()).add(blob)
    return known

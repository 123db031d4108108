"""`gitcache restore`, and the one rule every restore follows (`restore_outputs`).

The record is named by id, or by step: the record of the step's current signature
(with `-p` overrides), or with `--commit REV` the newest record made at REV or at
one of its ancestors. The step's outputs then hold exactly the record: files it names
are written, other files under its directory outputs are removed. A worktree file is
overwritten or removed only if its content is held by some record of the step (so
nothing is lost) or with `force`. `gitcache run` restores through the same function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from gitcache.errors import ConfigError, RecordNotFound
from gitcache.history import item_matches, newest_first, param_matches
from gitcache.leftovers import remove_restore_leftovers
from gitcache.locks import outputs_lock
from gitcache.params import decode
from gitcache.plan import Planner
from gitcache.project import Project
from gitcache.recordindex import RecordSummary
from gitcache.store import RecordStore, StoredRecord
from gitcache.sweeps import make_item, parse_selector, split_target
from gitcache.transfer import Meter
from gitcache.trust import check_outputs
from gitcache.worktree import ChunkIds


@dataclass(frozen=True)
class RestoreResult:
    record: StoredRecord
    written: list[str]  # paths written
    unchanged: list[str]  # paths that already held the record's content
    removed: list[str]  # files under the record's outputs that it does not hold
    dirs: list[str]  # outputs recorded as empty directories


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
    progress: Callable[[int, int | None], Meter] | None = None,
    on_wait: Callable[[str], None] = lambda _message: None,
) -> RestoreResult:
    """Write the record's outputs; refuse (before writing anything) to lose unrecorded work."""
    return restore_outputs(project, stored, force, progress=progress, on_wait=on_wait)


def restore_outputs(
    project: Project,
    stored: StoredRecord,
    force: bool = False,
    hint: str | None = None,
    progress: Callable[[int, int | None], Meter] | None = None,
    on_wait: Callable[[str], None] = lambda _message: None,
    unlocked: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> RestoreResult:
    """Make the step's outputs hold exactly what the record holds (Worktree.plan_restore).

    Only the outputs the step declares in gitcache.toml are touched (the record's own
    list when the step is no longer there): a record that would write elsewhere is an
    UnsafeRecord. Content that no record of the step holds is a WorktreeConflict
    (with `hint`), unless `force`; nothing is written then. The plan and the writes
    are made under the outputs' locks (`locks.outputs_lock`: `on_wait`, `unlocked`), so
    no run of the step writes them meanwhile.
    """
    # A no-op reads record.json only (store.lookup quick): check the tree before writing.
    stored = project.store.verified(stored)
    record = stored.record
    declared = declared_outputs(project, stored)
    check_outputs(stored, record.step, declared)
    scopes = [
        d
        for d in record.components.outputs
        if any(d == own or d.startswith(own + "/") for own in declared)
    ]
    worktree = project.worktree
    with outputs_lock(project.repo.state_dir, declared, on_wait, unlocked):
        remove_restore_leftovers(worktree.root, scopes)  # a killed restore's temporary files
        plan = worktree.plan_restore(
            record.outputs,
            scopes,
            lambda: recorded_blobs(project.store, record.step),
            force,
            record.step,
            hint,
        )
        total = sum(o.size for o in plan.write)
        meter = None if progress is None else progress(len(plan.write), total)
        sized = project.store.sizes_read(stored)
        worktree.apply(plan, meter, ChunkIds(stored.commit, stored.chunks, sized))
    project.removed.discard(o.path for o in record.outputs)
    return RestoreResult(
        stored, [o.path for o in plan.write], plan.unchanged, plan.remove, plan.dirs
    )


def declared_outputs(project: Project, stored: StoredRecord) -> Sequence[str]:
    """The outputs gitcache.toml lets the record write: its step's, for a sweep item its
    templates filled in with the item's values (the record's own list when the step
    is no longer declared). A record whose item cannot be filled in may write nothing."""
    record = stored.record
    step = project.workflow.steps.get(record.step)
    if step is None:
        return record.components.outputs
    if step.sweep is None:
        return step.outputs
    if record.item is None:
        return ()
    values = {k: decode(v) for k, v in record.item.items()}
    params = {
        **project.workflow.params,
        **{k: decode(v) for k, v in record.components.params.items()},
    }
    try:
        item = make_item(step, values, params, project.repo.root, f"step {record.step!r}")
    except ConfigError:
        return ()
    return item.outputs


def recorded_blobs(store: RecordStore, step: str) -> dict[str, set[str]]:
    """Path -> the blob ids that the step's records hold there (content that is safe)."""
    known: dict[str, set[str]] = {}
    for summary in store.summaries():
        if summary.step == step:
            for path, blob in store.summary_outputs(summary).items():
                known.setdefault(path, set()).add(blob)
    return known

"""`gitcache remove`: drop signatures (record refs), or free disk by removing outputs.

Removing signatures never touches the worktree (like `sos remove -s`). Removing
outputs (`--outputs`, like `sos remove -z`) deletes worktree files only when the
step's current signature has a record whose outputs are exactly these files, so
their content stays in git; the files are noted in the removed-outputs registry and
come back when a step that reads them has to run, or with `gitcache restore`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitcache.errors import NotInStore, RecordNotFound
from gitcache.gitrepo import RefUpdate
from gitcache.history import item_matches
from gitcache.latest import item_ref, latest_key, move_in_files, step_ref
from gitcache.plan import Planner
from gitcache.project import Project
from gitcache.recordindex import RecordSummary
from gitcache.removed import removed_everywhere
from gitcache.store import sig_ref
from gitcache.sweeps import parse_selector, split_target


def select_records(
    project: Project, idents: Sequence[str], everything: bool
) -> list[RecordSummary]:
    """Records named by step names (all records of the step) or record ids."""
    summaries = project.store.summaries()
    if everything:
        return summaries
    chosen: dict[str, RecordSummary] = {}
    by_commit = {s.commit: s for s in summaries}
    for ident in idents:
        name, selector = split_target(ident)
        step = project.workflow.steps.get(name)
        if selector is not None and step is not None and step.sweep is not None:
            wanted = parse_selector(step, selector)  # records of those items
            chosen.update(
                (s.commit, s)
                for s in summaries
                if s.step == name and s.item is not None and item_matches(s.item, wanted)
            )
            continue
        of_step = [s for s in summaries if s.step == ident]
        if of_step or ident in project.workflow.steps:
            chosen.update((s.commit, s) for s in of_step)
            continue
        stored = project.store.resolve(ident, list(project.workflow.steps))
        summary = by_commit.get(stored.commit)
        if summary is None:
            raise RecordNotFound(f"{ident!r} names record {stored.commit[:12]}, which no ref holds")
        chosen[summary.commit] = summary
    return list(chosen.values())


def sole_copies(project: Project, doomed: Sequence[RecordSummary]) -> dict[str, str]:
    """Outputs removed from the worktree whose only copy is in a doomed record.

    Returns path -> commit of a doomed record holding it. Dropping such a record
    would lose the file for good once git prunes it.
    """
    # Every worktree's: a record may hold the only copy of a file another one removed.
    removed = removed_everywhere(project.repo.worktree_state_dirs())
    removed |= set(project.removed.paths().items())  # with what this process has not saved
    if not removed:
        return {}
    gone = {s.commit for s in doomed}
    store = project.store
    kept: set[tuple[str, str]] = {
        (path, blob)
        for s in store.summaries()
        if s.commit not in gone
        for path, blob in store.summary_outputs(s).items()
    }
    found: dict[str, str] = {}
    for s in doomed:
        for path, blob in store.summary_outputs(s).items():
            if (path, blob) in removed and (path, blob) not in kept:
                found.setdefault(path, s.commit)
    return found


def remove_records(project: Project, doomed: Iterable[RecordSummary]) -> None:
    """Delete the records' signature refs in one transaction (compare-and-swap).

    A step's latest record (in any worktree: latest.py) that is removed becomes the
    step's newest remaining record, or none when none remains.
    """
    doomed = list(doomed)
    if not doomed:
        return
    gone = {s.commit for s in doomed}
    remaining = [s for s in project.store.summaries() if s.commit not in gone]
    repo = project.repo
    updates = [RefUpdate(sig_ref(s.signature), None, s.commit) for s in doomed]
    moves: dict[str, tuple[set[str], str | None]] = {}
    for step in sorted({s.step for s in doomed}):
        left = [s for s in remaining if s.step == step]
        newest = max(left, key=lambda s: (s.started_at, s.commit)).commit if left else None
        moves[step] = (gone, newest)
        current = repo.ref_target(step_ref(step))
        if current is not None and current in gone:
            updates.append(RefUpdate(step_ref(step), newest, current))
    # An item's latest record likewise moves to the item's newest remaining record.
    items = {(s.step, s.label): s.item for s in doomed if s.item is not None}
    for (step, label), item in sorted(items.items(), key=lambda kv: kv[0]):
        left = [s for s in remaining if s.step == step and s.label == label]
        newest = max(left, key=lambda s: (s.started_at, s.commit)).commit if left else None
        moves[latest_key(step, item)] = (gone, newest)
        name = item_ref(step, item)
        current = repo.ref_target(name)
        if current is not None and current in gone:
            updates.append(RefUpdate(name, newest, current))
    repo.update_refs(updates, message="gitcache: remove")
    move_in_files(repo, moves)


@dataclass(frozen=True)
class OutputRemoval:
    step: str
    record: str  # the record commit that keeps the files
    files: list[str]  # worktree paths deleted (or that would be)
    declared: tuple[str, ...] = ()  # the step's declared outputs (their locks)


def plan_output_removal(
    project: Project, targets: Sequence[str], params: dict[str, object]
) -> list[OutputRemoval]:
    """Check every named step (all, when none are named) before deleting anything."""
    workflow = project.workflow
    planner = Planner(project, {**workflow.params, **params}, os.environ)
    units = planner.units
    wanted = set(units.resolve(list(targets))) if targets else set(units.steps)
    plans: list[OutputRemoval] = []
    for name in planner.walk(list(targets)):
        chosen = name in wanted or units.group.get(name) in wanted
        if name in units.dynamic:
            if chosen:
                raise NotInStore(
                    f"step {name!r}: its items are known once the steps it reads are up to date",
                    hint="run `gitcache run` first",
                )
            continue
        ev = planner.evaluate(name)
        already = planner.removed_on_purpose(ev)
        if ev.record is not None:
            planner.will_restore(ev)  # later steps see these outputs through the record
        else:
            planner.will_change(name)
        if not chosen:
            continue
        if ev.unknown:
            raise NotInStore(
                f"step {name!r}: cannot tell whether its outputs are in the store: "
                f"upstream step {ev.unknown[0]} is not up to date",
                hint="run `gitcache run` first",
            )
        if ev.record is None:
            raise NotInStore(
                f"step {name!r}: its outputs are not in the store (no record for its current "
                "signature); refusing to delete them",
                hint=f"run `gitcache run {name}` or `gitcache run -s build {name}` first",
            )
        if not already:
            changed = ev.mismatches()
            if changed:
                how = "is not in" if changed[0].extra else "differs from"
                raise NotInStore(
                    f"step {name!r}: output {changed[0].path} {how} its record "
                    f"{ev.record.short}; refusing to delete it",
                    hint=f"`gitcache run -s build {name}` records the worktree's outputs",
                )
        present = [o.path for o in ev.record.record.outputs if ev.outputs.get(o.path) is not None]
        plans.append(OutputRemoval(name, ev.record.commit, present, ev.step.outputs))
    return plans


def remove_outputs(project: Project, plans: Sequence[OutputRemoval]) -> None:
    """Delete the planned files, remembering each one's blob id in the registry first."""
    for plan in plans:
        stored = project.store.load(plan.record)
        blobs = {o.path: o.blob for o in stored.record.outputs}
        project.removed.add((path, blobs[path]) for path in plan.files)
    project.removed.save()  # before deleting: a crash in between must not lose the note
    root = project.repo.root
    for plan in plans:
        for path in plan.files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / path)
            _prune_empty_dirs(root, Path(path).parent)


def _prune_empty_dirs(root: Path, rel: Path) -> None:
    while rel != Path("."):
        try:
            os.rmdir(root / rel)
        except OSError:
            return
        rel = rel.parent

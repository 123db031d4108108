"""`gitcache status`: per step, up to date / restorable / stale, and why."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from gitcache.canonical import canonical_json
from gitcache.graph import input_covers
from gitcache.latest import ITEM_PREFIX
from gitcache.params import decoded_text, encode
from gitcache.plan import Mismatch, Planner
from gitcache.project import Project
from gitcache.record import Components
from gitcache.sweeps import Units, item_id

State = Literal["up-to-date", "restorable", "stale", "never-run", "missing-input", "python"]


@dataclass(frozen=True)
class StepStatus:
    step: str  # the unit: a step's name, or an item's label (`train[lr=0.1]`)
    state: State
    signature: str | None
    record: str | None  # commit of the record that matches (or the last one, when stale)
    reasons: list[str] = field(default_factory=list)
    name: str = ""  # the step's name (for an item, its sweep step's)
    item: dict[str, Any] | None = None  # an item's values

    def as_json(self) -> dict[str, Any]:
        found = {
            "step": self.name or self.step,
            "state": self.state,
            "signature": self.signature,
            "record": self.record,
            "reasons": self.reasons,
        }
        if self.item is not None:  # plain steps' rows are as they were
            found |= {"label": self.step, "item": encode(self.item)}
        return found


def short(oid: str | None) -> str:
    return "missing" if oid is None else oid[:7]


def _value(value: Any) -> str:
    return decoded_text(value) or canonical_json(value).decode()


def _output_reason(m: Mismatch) -> str:
    if m.extra:
        return f"output {m.path} not in the record"
    if m.worktree is None:
        return f"output {m.path} missing"
    return f"output {m.path} modified ({short(m.recorded)} -> {short(m.worktree)})"


def describe_changes(old: Components, new: Components) -> list[str]:
    """What differs between two sets of signature components, in words."""
    reasons: list[str] = []
    if old.format != new.format or old.kind != new.kind:
        reasons.append(f"signature format changed ({old.format} -> {new.format})")
    if old.code != new.code:
        reasons.append("command changed")
    if old.shell != new.shell:
        reasons.append(f"shell changed ({old.shell} -> {new.shell})")
    for name in sorted(old.params.keys() | new.params.keys()):
        if name not in old.params:
            reasons.append(f"param {name} now used ({_value(new.params[name])})")
        elif name not in new.params:
            reasons.append(f"param {name} no longer used")
        elif old.params[name] != new.params[name]:
            reasons.append(
                f"param {name} changed ({_value(old.params[name])} -> {_value(new.params[name])})"
            )
    for path in sorted(old.inputs.keys() | new.inputs.keys()):
        before, after = old.inputs.get(path), new.inputs.get(path)
        if before is None:
            reasons.append(f"input {path} added")
        elif after is None:
            reasons.append(f"input {path} removed")
        elif before != after:
            reasons.append(f"input {path} changed ({short(before)} -> {short(after)})")
        elif (path in (old.executable or ())) != (path in (new.executable or ())):
            now = "executable" if path in (new.executable or ()) else "not executable"
            reasons.append(f"input {path} is {now} now")
    if old.outputs != new.outputs:
        reasons.append(f"outputs changed ({', '.join(old.outputs)} -> {', '.join(new.outputs)})")
    for name in sorted(old.env.keys() | new.env.keys()):
        before, after = old.env.get(name), new.env.get(name)
        if before != after:
            reasons.append(f"env {name} changed ({before!r} -> {after!r})")
    if not reasons and old.command != new.command:
        reasons.append("command changed once parameters and paths are filled in")
    return reasons


def statuses(
    project: Project,
    targets: list[str],
    params: Mapping[str, Any] | None = None,
    dropped: dict[str, list[str]] | None = None,
) -> list[StepStatus]:
    """The state of each unit of `targets` (all: empty). `dropped`, filled when given
    and no parameter is overridden: per sweep, the files in the worktree that only
    items no longer in it made (`dropped_outputs`)."""
    workflow = project.workflow
    planner = Planner(project, {**workflow.params, **(params or {})}, os.environ)
    try:
        return _statuses(project, planner, targets)
    finally:
        if dropped is not None and not params:
            dropped.update(dropped_outputs(project, planner.units))


def dropped_outputs(project: Project, units: Units) -> dict[str, list[str]]:
    """Per sweep step, the outputs of its recorded items that are no longer in it (a
    value taken out of `matrix`, a `foreach` file deleted) which are still in the
    worktree and no step of the workflow declares now: a step reading the directory
    still sees them (as with DVC and Snakemake). Only said, never deleted: they are
    the user's files, and in the store."""
    items: dict[str, set[str]] = {}  # step -> ids of its items now
    for step in units.steps.values():
        if step.item is not None:
            items.setdefault(step.name, set()).add(item_id(step.item))
    if not items:  # no sweep: no walk over every ref
        return {}
    declared = [o for u in units.steps for o in units.outputs_of(u)]
    root = project.repo.root
    found: dict[str, list[str]] = {}
    for ref, commit in project.repo.refs(ITEM_PREFIX):
        name, _, ident = ref.removeprefix(ITEM_PREFIX).rpartition("/")
        if name not in items or name in units.dynamic or ident in items[name]:
            continue  # a step not a sweep now, items not known yet, or an item still in it
        stored = project.store.load_or_none(commit)
        if stored is None:
            continue
        for out in stored.record.outputs:
            if os.path.lexists(root / out.path) and not any(
                input_covers(d, out.path) for d in declared
            ):
                found.setdefault(name, []).append(out.path)
    return {name: sorted(set(paths)) for name, paths in found.items()}


def _statuses(project: Project, planner: Planner, targets: list[str]) -> list[StepStatus]:
    units = planner.units
    result: list[StepStatus] = []
    for name in planner.walk(targets):
        step = units.steps[name]
        item = partial(StepStatus, name=step.name, item=step.item)
        if name in units.dynamic:  # a foreach over files a step not up to date will make
            waiting = [u for u in units.needs[name] if u in planner.changing]
            reasons = [
                f"waiting on step {n} ({count or 'not'} up to date): its items are known "
                "once it ran"
                for n, count in _counted(units, waiting)
            ]
            result.append(item(name, "stale", None, None, reasons))
            continue
        ev = planner.evaluate(name)
        if ev.unknown:
            planner.will_change(name)
            reasons = _upstream(units, ev.unknown)
            result.append(item(name, "stale", None, None, reasons))
        elif ev.missing:
            planner.will_change(name)
            result.append(
                item(
                    name,
                    "missing-input",
                    None,
                    None,
                    [f"input {m} does not exist" for m in ev.missing],
                )
            )
        elif ev.record is not None:
            mismatches = ev.mismatches()
            if not mismatches:
                result.append(item(name, "up-to-date", ev.signature, ev.record.commit))
                continue
            planner.will_restore(ev)
            if planner.removed_on_purpose(ev):
                reasons = [
                    f"output {m.path} removed from the worktree, kept in the store "
                    "(restored when a step needs it, or by `gitcache restore`)"
                    for m in mismatches
                ]
                result.append(item(name, "up-to-date", ev.signature, ev.record.commit, reasons))
                continue
            reasons = [_output_reason(m) for m in mismatches]
            result.append(item(name, "restorable", ev.signature, ev.record.commit, reasons))
        else:
            planner.will_change(name)
            latest = project.store.latest(step.name, step.item)
            assert ev.components is not None
            if (
                latest is None
                and step.item is not None
                and project.store.latest(step.name) is not None
            ):
                # The sweep has records, not this item: a new value (or file).
                result.append(item(name, "stale", ev.signature, None, ["new item"]))
            elif latest is None:
                result.append(item(name, "never-run", ev.signature, None, ["no record yet"]))
            else:
                reasons = describe_changes(latest.record.components, ev.components) or [
                    "no record for the current signature"
                ]
                result.append(item(name, "stale", ev.signature, latest.commit, reasons))
    return result


def _counted(units: Units, keys: list[str]) -> list[tuple[str, str]]:
    """Step names of units, each with how many of its items are among them ('' for a
    plain step): `[("train", "3 items not"), ("a", "")]`."""
    counts: dict[str, int] = {}
    for key in keys:
        step = units.steps[key]
        counts[step.name] = counts.get(step.name, 0) + (step.item is not None)
    return [(n, f"{c} item{'s' if c != 1 else ''} not" if c else "") for n, c in counts.items()]


def _upstream(units: Units, keys: list[str]) -> list[str]:
    """`upstream step a is not up to date`; items counted per step, not listed."""
    return [
        f"upstream step {name} is not up to date"
        + (f" ({count.removesuffix(' not')})" if count else "")
        for name, count in _counted(units, keys)
    ]


def python_statuses(project: Project, names: list[str]) -> list[StepStatus]:
    """Python steps (docs/python.md) by name: their latest record and how many there are.

    A Python step's signature depends on the arguments of a call, which only the
    caller knows, so there is no up to date or stale here: `f.explain(...)` answers
    that for a call, against the same latest record (the step's ref, else the
    newest). `names`: those steps (a name that is no Python step with a record is
    left out); empty: every Python step with a record that the workflow does not
    declare. Read through the record index; one record.json per step is loaded.
    """
    wanted = set(names)
    newest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for summary in project.store.summaries():
        step = summary.step
        if (wanted and step not in wanted) or (not wanted and step in project.workflow.steps):
            continue
        counts[step] = counts.get(step, 0) + 1
        if step not in newest or summary.started_at > newest[step].started_at:
            newest[step] = summary
    result: list[StepStatus] = []
    for step in sorted(newest):
        stored = project.store.latest(step) or project.store.load_or_none(newest[step].commit)
        if stored is None or stored.record.components.kind != "python":
            continue
        record = stored.record
        n = counts[step]
        reasons = [
            f"latest record {stored.commit[:12]}: {record.command}",
            f"{n} record{'s' if n != 1 else ''} (`gitcache log {step}`); whether a call "
            f"is recorded: {record.python.function.rsplit(':', 1)[-1] if record.python else step}"
            ".explain(...) in Python",
        ]
        result.append(StepStatus(step, "python", record.signature, stored.commit, reasons))
    return result

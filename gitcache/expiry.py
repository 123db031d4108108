"""`gitcache gc`: choose old records to drop (by age, or beyond the newest N per step).

Protected unless `everything` is set: each step's latest record (in every worktree)
and every record that matches the current worktree (the record of a step's current
signature), so gc never makes an up-to-date step stale. Dropping a record removes
its refs only; git frees the objects in its own gc (see `housekeeping.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

from gitcache import latest
from gitcache.history import newest_first
from gitcache.plan import Planner
from gitcache.project import Project
from gitcache.recordindex import RecordSummary
from gitcache.removal import sole_copies
from gitcache.timespec import record_time


@dataclass(frozen=True)
class GcPolicy:
    older_than: datetime | None = None  # drop records started before this moment
    keep: int | None = None  # keep the newest N records of each step
    everything: bool = False  # also drop latest and current records


@dataclass
class GcPlan:
    drop: list[RecordSummary] = field(default_factory=list)
    protected: dict[str, str] = field(default_factory=dict)  # commit -> why it stays


def current_records(project: Project) -> dict[str, str]:
    """Commit of the record matching each step's (or item's) current signature -> its
    name or label."""
    workflow = project.workflow
    planner = Planner(project, workflow.params, os.environ)
    found: dict[str, str] = {}
    for name in planner.walk([]):
        if name in planner.units.dynamic:
            continue  # its items are not known: what they read is not up to date
        ev = planner.evaluate(name)
        if ev.record is not None:
            found[ev.record.commit] = name
            planner.will_restore(ev)
        else:
            planner.will_change(name)
    return found


def plan_gc(project: Project, policy: GcPolicy) -> GcPlan:
    plan = GcPlan()
    by_step: dict[str, list[RecordSummary]] = {}
    for summary in newest_first(project.store.summaries()):
        by_step.setdefault(summary.step, []).append(summary)
    if not policy.everything:
        # Every worktree's latest records (latest.py), not only this one's, and every
        # sweep item's.
        for commit, step in latest.everywhere(project.repo).items():
            plan.protected.setdefault(commit, f"latest record of step {step}")
        for commit, step in current_records(project).items():
            plan.protected[commit] = f"matches the current worktree (step {step})"
    for records in by_step.values():
        for path, commit in sole_copies(project, records).items():
            plan.protected.setdefault(commit, f"holds {path}, removed from the worktree")
    for records in by_step.values():
        for rank, summary in enumerate(records):
            if policy.keep is not None and rank < policy.keep:
                continue
            if policy.older_than is not None:
                started = record_time(summary.started_at)
                if started is None or started >= policy.older_than:
                    continue
            if summary.commit not in plan.protected:
                plan.drop.append(summary)
    return plan

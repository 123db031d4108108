"""`gitcache gc`."""

from __future__ import annotations

import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import short, warn, when
from gitcache.errors import ConfigError
from gitcache.expiry import GcPolicy, plan_gc
from gitcache.housekeeping import run_git_gc
from gitcache.locks import dropping_records, remove_unheld_signature_locks
from gitcache.removal import remove_records
from gitcache.timespec import before, parse_age


@click.command()
@click.option("--older-than", metavar="AGE", help="Drop records older than AGE (30d, 12h, 2w).")
@click.option(
    "--keep", type=click.IntRange(min=0), metavar="N", help="Keep the newest N records per step."
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Also drop each step's latest record and records matching the worktree.",
)
@click.option("--prune", is_flag=True, help="Then run `git gc --prune=now` to free the space.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be dropped.")
@workflow_option
@click.pass_obj
def gc(
    options: Options,
    older_than: str | None,
    keep: int | None,
    everything: bool,
    prune: bool,
    dry_run: bool,
) -> None:
    """Drop old records: by age and/or beyond the newest N per step.

    With both options a record goes only if it is older than AGE and not among the
    newest N. Each step's latest record and the records matching the current
    worktree stay unless --all. Only refs are removed; git frees the space in its
    own gc (--prune runs it now).
    """
    if older_than is None and keep is None:
        raise ConfigError("say which records to drop: --older-than AGE and/or --keep N")
    project = options.project(require_workflow=False)
    cutoff = None
    if older_than is not None:
        cutoff = before(datetime.now(UTC), parse_age(older_than, "--older-than"))
    # From choosing to pruning, no other gitcache writes records or relies on one
    # (a run storing outputs, `remove --outputs` deleting the files a record holds).
    locked = nullcontext() if dry_run else dropping_records(project.repo.state_dir, warn)
    with locked:
        try:
            plan = plan_gc(project, GcPolicy(cutoff, keep, everything))
        finally:
            project.save()
        verb = "would drop" if dry_run else "dropped"
        for s in plan.drop:
            click.echo(f"{verb} record {short(s.commit)}  {s.step:<16} {when(s.started_at)}")
        if not dry_run:
            remove_records(project, plan.drop)
            # One lock file per signature ever run: those no run holds go too.
            remove_unheld_signature_locks(project.repo.state_dir)
        n = len(plan.drop)
        click.echo(f"gitcache: {verb} {n} record{'s' if n != 1 else ''}", err=True)
        if not dry_run:
            _prune_code_forms(project.repo.state_dir)
        if dry_run or not plan.drop:
            return
        if prune:
            run_git_gc(project.repo.root)
            click.echo("gitcache: git gc --prune=now done", err=True)
            return
    click.echo(
        "gitcache: the space is freed by git's own gc: run `git gc --prune=now` "
        "(or `gitcache gc --prune` next time)",
        err=True,
    )


def _prune_code_forms(state_dir: Path) -> None:
    """Python steps' cache of normalized code (docs/python.md): unused files go."""
    from gitcache.python.code import FORMS_UNUSED_DAYS, prune_forms

    n = prune_forms(state_dir, time.time())
    if n:
        click.echo(
            f"gitcache: dropped {n} cached code form file{'s' if n != 1 else ''} "
            f"(unused for {FORMS_UNUSED_DAYS} days, or beyond the size limit)",
            err=True,
        )


COMMANDS = [gc]

"""`gitcache remove`: signatures (record refs), or with --outputs the worktree outputs."""

from __future__ import annotations

from contextlib import nullcontext

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.output import short, warn
from gitcache.errors import ConfigError, NotInStore
from gitcache.history import newest_first
from gitcache.locks import dropping_records, outputs_lock, writing_objects
from gitcache.project import Project
from gitcache.removal import (
    OutputRemoval,
    plan_output_removal,
    remove_outputs,
    remove_records,
    select_records,
    sole_copies,
)
from gitcache.sweeps import split_target
from gitcache.workflow import parse_overrides


@click.command()
@click.argument("idents", nargs=-1, metavar="[STEP|RECORD]...")
@click.option("--all", "everything", is_flag=True, help="Every record (or every step's outputs).")
@click.option(
    "-z",
    "--outputs",
    is_flag=True,
    help="Delete the steps' worktree outputs (kept in the store) instead of signatures.",
)
@params_option("With --outputs: the parameters the outputs were made with.")
@click.option("-n", "--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@workflow_option
@click.pass_obj
def remove(
    options: Options,
    idents: tuple[str, ...],
    everything: bool,
    outputs: bool,
    params: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Remove signatures (records' refs), never worktree files, like `sos remove -s`.

    A STEP removes all its records; a RECORD id removes that one. With --outputs
    (like `sos remove -z`), delete the STEPs' outputs from the worktree instead,
    provided their current record holds them; `gitcache run` brings them back
    when a step that reads them has to run, `gitcache restore` at once.
    """
    if not idents and not everything:
        raise ConfigError("name the steps or records to remove, or give --all")
    if idents and everything:
        raise ConfigError("give either steps/records or --all, not both")
    project = options.project(require_workflow=False)
    if outputs:
        _remove_outputs(project, [] if everything else list(idents), list(params), dry_run)
        return
    if params:
        raise ConfigError("-p applies only with --outputs")
    # No `remove --outputs` between the sole-copy check and dropping the refs.
    locked = nullcontext() if dry_run else dropping_records(project.repo.state_dir, warn)
    with locked:
        doomed = newest_first(select_records(project, list(idents), everything))
        lost = sole_copies(project, doomed)
        if lost:
            path, commit = next(iter(lost.items()))
            raise NotInStore(
                f"record {commit[:12]} holds the only copy of {path}, which "
                "`remove --outputs` deleted from the worktree; refusing to remove it",
                hint="bring the file back first with `gitcache restore`",
            )
        verb = "would remove" if dry_run else "removed"
        for s in doomed:
            click.echo(f"{verb} record {short(s.commit)}  {s.label:<16} {short(s.signature)}")
        if not dry_run:
            remove_records(project, doomed)
    click.echo(f"gitcache: {verb} {len(doomed)} record{'s' if len(doomed) != 1 else ''}", err=True)


def _remove_outputs(project: Project, steps: list[str], params: list[str], dry_run: bool) -> None:
    for step in steps:
        project.workflow.select([split_target(step)[0]])  # unknown: an error naming the known
    try:
        # No `gitcache gc` or `remove` may drop the records between the check that they
        # hold the files and the files' deletion (locks.py).
        with writing_objects(project.repo.state_dir, warn):
            overrides = parse_overrides(project.workflow, params)
            plans = plan_output_removal(project, steps, overrides)
            if not dry_run:
                # A run writing these outputs meanwhile (another gitcache) would record
                # what is left of them: their locks first, then the checks again.
                declared = sorted({o for plan in plans for o in plan.declared})
                with outputs_lock(project.repo.state_dir, declared, warn):
                    plans = plan_output_removal(project, steps, overrides)
                    _list(plans, "deleted")
                    remove_outputs(project, plans)
            else:
                _list(plans, "would delete")
    finally:
        project.save()
    count = sum(len(p.files) for p in plans)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"gitcache: {verb} {count} output file{'s' if count != 1 else ''}; "
        "their content stays in the store",
        err=True,
    )


def _list(plans: list[OutputRemoval], verb: str) -> None:
    for plan in plans:
        for path in plan.files:
            click.echo(f"{verb} {path}  (step {plan.step}, record {short(plan.record)})")


COMMANDS = [remove]

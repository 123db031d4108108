"""`gitcache restore`."""

from __future__ import annotations

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.output import short
from gitcache.restoring import find_records, recorded_blobs, restore_record
from gitcache.sweeps import encoded_label
from gitcache.workflow import parse_overrides


@click.command()
@click.argument("ident", metavar="STEP|RECORD")
@click.option(
    "--commit", "rev", metavar="REV", help="The step's newest record made at REV or before it."
)
@params_option("The step's record for these parameters.")
@click.option("--force", is_flag=True, help="Overwrite worktree files that no record holds.")
@workflow_option
@click.pass_obj
def restore(
    options: Options, ident: str, rev: str | None, params: tuple[str, ...], force: bool
) -> None:
    """Write a record's outputs into the worktree.

    STEP means the record of the step's current signature (with -p, as if run with
    those parameters; with --commit, the newest record made at that commit or an
    ancestor); for a sweep step, one record per item (`'train[lr=0.1]'`: those
    items). RECORD is a record or signature id, as `gitcache log` shows.
    """
    project = options.project()
    results = []
    try:
        overrides = parse_overrides(project.workflow, list(params))
        found = find_records(project, ident, rev, overrides)
        known = recorded_blobs(project, found[0].record.step) if len(found) > 1 else None
        for stored in found:
            results.append(restore_record(project, stored, force, known))
    finally:
        project.save()
    for result in results:
        for path in result.written:
            click.echo(f"restored {path}")
    for result in results:
        record = result.record.record
        name = record.step if record.item is None else encoded_label(record.step, record.item)
        click.echo(
            f"gitcache: record {short(result.record.commit)} ({name}): "
            f"{len(result.written)} restored, {len(result.unchanged)} already in place",
            err=True,
        )


COMMANDS = [restore]

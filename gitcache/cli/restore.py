"""`gitcache restore`."""

from __future__ import annotations

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.output import short, some_paths, warn
from gitcache.locks import writing_objects
from gitcache.restoring import find_record, restore_record
from gitcache.workflow import parse_overrides


@click.command()
@click.argument("ident", metavar="STEP|RECORD")
@click.option(
    "--commit", "rev", metavar="REV", help="The step's newest record made at REV or before it."
)
@params_option("The step's record for these parameters.")
@click.option(
    "--force", is_flag=True, help="Overwrite or remove worktree files that no record holds."
)
@workflow_option
@click.pass_obj
def restore(
    options: Options, ident: str, rev: str | None, params: tuple[str, ...], force: bool
) -> None:
    """Write a record's outputs into the worktree.

    STEP means the record of the step's current signature (with -p, as if run with
    those parameters; with --commit, the newest record made at that commit or an
    ancestor). RECORD is a record or signature id, as `gitcache log` shows.
    """
    project = options.project()
    try:
        overrides = parse_overrides(project.workflow, list(params))
        # No `gitcache gc --prune` between finding the record and reading its blobs.
        with writing_objects(project.repo.state_dir, warn):
            stored = find_record(project, ident, rev, overrides)
            result = restore_record(project, stored, force)
    finally:
        project.save()
    # A summary, not a line per file: a directory output may hold thousands.
    if result.written or result.dirs:
        click.echo(f"restored {some_paths(sorted(result.written + result.dirs))}")
    if result.removed:
        click.echo(f"removed {some_paths(sorted(result.removed))}")
    removed = f", {len(result.removed)} removed" if result.removed else ""
    click.echo(
        f"gitcache: record {short(stored.commit)} ({stored.record.step}): "
        f"{len(result.written)} restored, {len(result.unchanged)} already in place{removed}",
        err=True,
    )


COMMANDS = [restore]

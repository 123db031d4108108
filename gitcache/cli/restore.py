"""`gitcache restore`."""

from __future__ import annotations

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.output import TerminalReporter, short, some_paths, warn
from gitcache.locks import writing_objects
from gitcache.processes import Children, forwarding_signals
from gitcache.restoring import find_records, restore_record
from gitcache.sweeps import encoded_label
from gitcache.transfer import Meter
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
    ancestor); for a sweep step, one record per item (`'train[lr=0.1]'`: those
    items). RECORD is a record or signature id, as `gitcache log` shows.
    """
    project = options.project()
    results = []
    reporter = TerminalReporter()
    try:
        overrides = parse_overrides(project.workflow, list(params))
        # No `gitcache gc --prune` between finding the records and reading their blobs.
        # SIGTERM and SIGHUP unwind as Ctrl-C does (Terminated), so the file being written
        # goes: by default they end the process with its temporary file left behind.
        with forwarding_signals(Children()), writing_objects(project.repo.state_dir, warn):
            for stored in find_records(project, ident, rev, overrides):
                step = stored.record.step

                def meter(files: int, size: int | None, step: str = step) -> Meter:
                    return Meter(step, "restoring", files, size, reporter.transfer)

                results.append(restore_record(project, stored, force, meter, warn))
    finally:
        project.save()
    # A summary, not a line per file: a directory output may hold thousands.
    written = sorted(p for r in results for p in r.written + r.dirs)
    if written:
        click.echo(f"restored {some_paths(written)}")
    removed_paths = sorted(p for r in results for p in r.removed)
    if removed_paths:
        click.echo(f"removed {some_paths(removed_paths)}")
    for result in results:
        record = result.record.record
        name = record.step if record.item is None else encoded_label(record.step, record.item)
        removed = f", {len(result.removed)} removed" if result.removed else ""
        click.echo(
            f"gitcache: record {short(result.record.commit)} ({name}): "
            f"{len(result.written)} restored, {len(result.unchanged)} already in place{removed}",
            err=True,
        )


COMMANDS = [restore]

"""`gitcache run`."""

from __future__ import annotations

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import TerminalReporter
from gitcache.cli.sharing import lookup, push_new_records, run_remote
from gitcache.engine import MODES, Engine, RunOptions
from gitcache.workflow import parse_overrides


@click.command()
@click.argument("steps", nargs=-1)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter of gitcache.toml.",
)
@click.option(
    "-s",
    "--signature-mode",
    "mode",
    type=click.Choice(MODES),
    default="default",
    show_default=True,
    help="How signatures are used (as in SoS).",
)
@click.option("-n", "--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option(
    "-k",
    "--keep-going",
    is_flag=True,
    help="After a failure, go on with steps that do not need it.",
)
@click.option("-q", "--quiet", is_flag=True, help="Only the steps' own output and errors.")
@click.option(
    "--remote",
    metavar="NAME",
    help="On a local miss, ask this git remote for the record first (config: remote).",
)
@workflow_option
@click.pass_obj
def run(
    options: Options,
    steps: tuple[str, ...],
    params: tuple[str, ...],
    mode: str,
    dry_run: bool,
    keep_going: bool,
    quiet: bool,
    remote: str | None,
) -> None:
    """Run STEPS (default: all) and the steps they need; skip or restore what is recorded."""
    project = options.project()
    overrides = parse_overrides(project.workflow, list(params))
    reporter = TerminalReporter(quiet)
    shared = run_remote(project, remote, options.directory)
    run_options = RunOptions(mode, overrides, dry_run, keep_going, on_miss=lookup(project, shared))  # type: ignore[arg-type]
    engine = Engine(project, run_options, reporter)
    try:
        summary = engine.run(list(steps))
    finally:
        project.save()
    reporter.summary(summary)
    if not dry_run:
        push_new_records(project, shared, summary)
    for result in summary.results:
        if result.outcome == "failed":
            click.echo(f"gitcache: error: step {result.step!r} failed: {result.detail}", err=True)
    if any(r.outcome == "mismatch" for r in summary.results):
        pending = [r.step for r in summary.results if r.outcome == "pending"]
        if pending:
            click.echo(f"gitcache: steps left pending: {', '.join(pending)}", err=True)
    click.get_current_context().exit(summary.exit_code)


COMMANDS = [run]

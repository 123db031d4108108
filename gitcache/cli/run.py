"""`gitcache run`."""

from __future__ import annotations

from typing import cast

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.output import TerminalReporter, warn
from gitcache.engine import MODES, Engine, Mode, RunOptions
from gitcache.hookpolicy import opted_out
from gitcache.sweeps import split_target
from gitcache.workflow import parse_overrides


@click.command()
@click.argument("steps", nargs=-1)
@params_option("Override a parameter of gitcache.toml.")
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
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    default=1,
    show_default=True,
    help="Run up to N independent steps at the same time.",
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
    jobs: int,
    quiet: bool,
    remote: str | None,
) -> None:
    """Run STEPS (default: all) and the steps they need; skip or restore what is recorded.

    Given task files (`DIR/*.json`, saved with `task.save(DIR)`) instead, run those
    Python tasks in up to N worker processes, skipping what is recorded.
    """
    if any(s.endswith(".json") for s in steps):
        from gitcache.cli.tasks import run_tasks

        click.get_current_context().exit(run_tasks(options.directory, steps, jobs, quiet, remote))
    project = options.project()
    config = project.workflow.config
    # Refusing needs its hooks. For the root gitcache.toml, opening the project installed
    # them or said in one line why it could not (hookpolicy.py), unless the user
    # removed them.
    if config.hooks.rewrite == "block" and (
        options.workflow_file is not None or opted_out(project.repo)
    ):
        from gitcache import hooks

        gone = hooks.missing(project.repo, "block")
        if gone:
            needed = ", ".join(gone)
            warn(f'rewrite = "block" needs the {needed} hook: run `gitcache hooks install`')
    overrides = parse_overrides(project.workflow, list(params))
    project.workflow.select([split_target(s)[0] for s in steps])  # unknown: error, early
    reporter = TerminalReporter(quiet, prefix=jobs > 1)
    # The sharing modules (and git transport) are imported only by runs that share.
    sharing = remote is not None or config.remote is not None or config.push_on_record
    if sharing:
        from gitcache.cli.sharing import lookup, push_new_records, run_remote

        shared = run_remote(project, remote, options.directory)
    run_options = RunOptions(
        cast(Mode, mode),
        overrides,
        dry_run,
        keep_going,
        jobs,
        on_miss=lookup(project, shared) if sharing else None,
    )
    engine = Engine(project, run_options, reporter)
    reporter.expect(len(engine.plan(list(steps))))
    try:
        summary = engine.run(list(steps))
    finally:
        project.save()
    reporter.summary(summary)
    if any(r.outcome == "ran" for r in summary.results):
        from gitcache import housekeeping

        if housekeeping.too_many_packs(project.repo.common_dir / "objects"):
            housekeeping.start_auto_gc(project.repo.root)
    if sharing and not dry_run:
        push_new_records(project, shared, summary)
    for result in summary.results:
        if result.outcome == "failed":
            click.echo(f"gitcache: error: step {result.step!r} failed: {result.detail}", err=True)
    pending = [r.step for r in summary.results if r.outcome == "pending"]
    if pending:
        click.echo(f"gitcache: steps left pending: {', '.join(pending)}", err=True)
    click.get_current_context().exit(summary.exit_code)


COMMANDS = [run]

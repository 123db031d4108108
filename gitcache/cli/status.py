"""`gitcache status`."""

from __future__ import annotations

import json

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.status import statuses
from gitcache.workflow import parse_overrides

MAX_REASONS = 10  # reasons printed per step; beyond that, the first SHOWN and a count
SHOWN = 8

_WORDS = {
    "up-to-date": "up to date",
    "restorable": "restorable from cache",
    "stale": "stale",
    "never-run": "never run",
    "missing-input": "missing input",
}


@click.command()
@click.argument("steps", nargs=-1)
@params_option("Ask as if run with this parameter.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@workflow_option
@click.pass_obj
def status(
    options: Options, steps: tuple[str, ...], params: tuple[str, ...], as_json: bool
) -> None:
    """Per step: up to date, restorable from cache, or stale, and why."""
    project = options.project()
    try:
        found = statuses(project, list(steps), parse_overrides(project.workflow, list(params)))
    finally:
        project.save()
    if as_json:
        click.echo(json.dumps([s.as_json() for s in found], indent=2))
        return
    width = max((len(s.step) for s in found), default=0)
    for item in found:
        click.echo(f"{item.step:<{width}}  {_WORDS[item.state]}")
        # A step with thousands of outputs gets a few lines, not thousands.
        shown = item.reasons if len(item.reasons) <= MAX_REASONS else item.reasons[:SHOWN]
        for reason in shown:
            click.echo(f"{'':<{width}}    {reason}")
        if len(shown) < len(item.reasons):
            more = len(item.reasons) - len(shown)
            click.echo(f"{'':<{width}}    … and {more} more (`gitcache status --json` lists all)")


COMMANDS = [status]

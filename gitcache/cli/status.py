"""`gitcache status`."""

from __future__ import annotations

import json

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.status import python_statuses, statuses
from gitcache.workflow import parse_overrides

MAX_REASONS = 10  # reasons printed per step; beyond that, the first SHOWN and a count
SHOWN = 8

_WORDS = {
    "up-to-date": "up to date",
    "restorable": "restorable from cache",
    "stale": "stale",
    "never-run": "never run",
    "missing-input": "missing input",
    "python": "Python step",
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
    """Per step: up to date, restorable from cache, or stale, and why.

    Python steps (which the workflow file does not declare) are listed by name with
    their latest record: whether a call is recorded depends on its arguments, which
    `f.explain(...)` answers.
    """
    # A repository whose steps are all Python functions has no gitcache.toml.
    project = options.project(require_workflow=False)
    workflow = project.workflow
    try:
        others = [s for s in steps if s not in workflow.steps]
        python = python_statuses(project, others) if others or not steps else []
        named = {p.step for p in python}
        shell = [s for s in steps if s not in named]
        if not workflow.path.exists() and options.workflow_file is None and not python:
            project = options.project()  # says that gitcache.toml is missing
        found = []
        if shell or not steps:
            found = statuses(project, shell, parse_overrides(workflow, list(params)))
        found += python
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

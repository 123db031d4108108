"""`gitcache status`."""

from __future__ import annotations

import json

import click

from gitcache.cli.main import Options, params_option, workflow_option
from gitcache.cli.text import printable
from gitcache.status import StepStatus, python_statuses, statuses
from gitcache.sweeps import ITEM, value_text
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
@click.option("-v", "--verbose", is_flag=True, help="List every item of a sweep on its own.")
@workflow_option
@click.pass_obj
def status(
    options: Options,
    steps: tuple[str, ...],
    params: tuple[str, ...],
    as_json: bool,
    verbose: bool,
) -> None:
    """Per step: up to date, restorable from cache, or stale, and why.

    STEPS may name sweep items (`'train[lr=0.1]'`); a sweep's items are summed up
    on one line unless -v is given. Python steps (which the workflow file does not
    declare) are listed by name with their latest record: whether a call is recorded
    depends on its arguments, which `f.explain(...)` answers.
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
        dropped: dict[str, list[str]] = {}
        if shell or not steps:
            overrides = parse_overrides(workflow, list(params))
            found = statuses(project, shell, overrides, dropped)
        found += python
    finally:
        project.save()
    if as_json:
        click.echo(json.dumps([s.as_json() for s in found], indent=2))
        return
    rows: list[tuple[str, str, list[str]]] = []
    for name, group in _by_step(found):
        if verbose or group[0].item is None:
            rows += [(s.step, _WORDS[s.state], list(s.reasons)) for s in group]
        else:
            rows.append((name, sweep_summary(group), []))
        left = dropped.get(name)
        if left and group[0].item is not None:
            files = f"{len(left)} file{'s' if len(left) != 1 else ''}"
            rows[-1][2].append(
                f"{files} of items no longer in the sweep still in the worktree: "
                f"{', '.join(left[:3])}{', …' if len(left) > 3 else ''} "
                "(a step reading their directory sees them)"
            )
    width = max((len(r[0]) for r in rows), default=0)
    for label, text, reasons in rows:
        click.echo(printable(f"{label:<{width}}  {text}"))
        # A step with thousands of outputs gets a few lines, not thousands.
        shown = reasons if len(reasons) <= MAX_REASONS else reasons[:SHOWN]
        for reason in shown:
            click.echo(printable(f"{'':<{width}}    {reason}"))
        if len(shown) < len(reasons):
            more = len(reasons) - len(shown)
            click.echo(f"{'':<{width}}    … and {more} more (`gitcache status --json` lists all)")


def _by_step(found: list[StepStatus]) -> list[tuple[str, list[StepStatus]]]:
    groups: dict[str, list[StepStatus]] = {}
    for item in found:
        groups.setdefault(item.name or item.step, []).append(item)
    return list(groups.items())


def sweep_summary(items: list[StepStatus]) -> str:
    """`4/6 up to date; 2 stale: lr=0.01 (new item)`: a sweep's items on one line."""
    ok = [s for s in items if s.state == "up-to-date"]
    parts = [f"{len(ok)}/{len(items)} up to date"]
    by_state: dict[str, list[StepStatus]] = {}
    for s in items:
        if s.state != "up-to-date":
            by_state.setdefault(s.state, []).append(s)
    for state, group in by_state.items():
        text = f"{len(group)} {_WORDS[state]}: {describe_items(group, items)}"
        reasons = {tuple(s.reasons) for s in group}
        if len(reasons) == 1 and next(iter(reasons)):
            text += f" ({'; '.join(next(iter(reasons)))})"
        parts.append(text)
    return "; ".join(parts)


def describe_items(group: list[StepStatus], every: list[StepStatus], most: int = 3) -> str:
    """Items named by the values they share when those pick exactly them (`lr=0.01`),
    else listed (a few, then how many more)."""
    values = [s.item or {} for s in group]
    shared = {
        k: v for k, v in values[0].items() if k != ITEM and all(x.get(k) == v for x in values)
    }
    if shared and len(group) == sum(
        all((s.item or {}).get(k) == v for k, v in shared.items()) for s in every
    ):
        return ",".join(f"{k}={value_text(v)}" for k, v in shared.items())
    if len(group) == len(every):
        return "all"
    names = [s.step[len(s.name) + 1 : -1] if s.name else s.step for s in group[:most]]
    more = f" and {len(group) - most} more" if len(group) > most else ""
    return "; ".join(names) + more


COMMANDS = [status]

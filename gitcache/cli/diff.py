"""`gitcache diff`."""

from __future__ import annotations

import json

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import short
from gitcache.recorddiff import diff_records


@click.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@workflow_option
@click.pass_obj
def diff(options: Options, first: str, second: str, as_json: bool) -> None:
    """What differs between two records (params, inputs, code, env, outputs).

    A and B are record or signature ids, or step names (the step's latest record).
    """
    project = options.project(require_workflow=False)
    steps = list(project.workflow.steps)
    a = project.store.resolve(first, steps)
    b = project.store.resolve(second, steps)
    result = diff_records(a.record, b.record)
    if as_json:
        payload = {
            "a": a.commit,
            "b": b.commit,
            "same": result.same,
            "provenance": result.provenance,
            "signature": result.signature,
            "outputs": result.outputs,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"record {short(a.commit)} ({a.record.step}) -> {short(b.commit)} ({b.record.step})")
    for line in result.lines():
        click.echo(f"  {line}")
    if result.same:
        click.echo("  same signature components and outputs")


COMMANDS = [diff]

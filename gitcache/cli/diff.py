"""`gitcache diff`."""

from __future__ import annotations

import json

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import short
from gitcache.cli.text import printable
from gitcache.history import item_latest
from gitcache.recorddiff import diff_records
from gitcache.store import StoredRecord
from gitcache.sweeps import encoded_label


@click.command()
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@workflow_option
@click.pass_obj
def diff(options: Options, first: str, second: str, as_json: bool) -> None:
    """What differs between two records (params, inputs, code, env, outputs).

    A and B are record or signature ids, step names (the step's latest record), or
    sweep items (`'train[lr=0.1,seed=1]'`: the item's latest record).
    """
    project = options.project(require_workflow=False)
    steps = list(project.workflow.steps)
    store, workflow = project.store, project.workflow
    a = item_latest(store, workflow, first) or store.resolve(first, steps)
    b = item_latest(store, workflow, second) or store.resolve(second, steps)
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
    click.echo(
        printable(f"record {short(a.commit)} ({_name(a)}) -> {short(b.commit)} ({_name(b)})")
    )
    for line in result.lines():
        click.echo(printable(f"  {line}"))
    if result.same:
        click.echo("  same signature components and outputs")


def _name(stored: StoredRecord) -> str:
    record = stored.record
    return record.step if record.item is None else encoded_label(record.step, record.item)


COMMANDS = [diff]

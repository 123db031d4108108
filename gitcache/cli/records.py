"""`gitcache log` and `gitcache show`: reading records."""

from __future__ import annotations

import json
import sys

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import seconds, short, when
from gitcache.history import LogQuery, list_records
from gitcache.store import StoredRecord


def _summary(stored: StoredRecord) -> dict[str, object]:
    r = stored.record
    return {
        "record": stored.commit,
        "step": r.step,
        "signature": r.signature,
        "source_commit": r.source_commit,
        "dirty": r.dirty,
        "started_at": r.started_at,
        "duration": r.duration,
        "exit_status": r.exit_status,
        "alternate": stored.alternate,
    }


@click.command()
@click.argument("step", required=False)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N records."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@workflow_option
@click.pass_obj
def log(options: Options, step: str | None, limit: int | None, as_json: bool) -> None:
    """Records, newest first: step, short signature, commit, when, duration."""
    project = options.project()
    if step is not None:
        project.workflow.select([step])  # an unknown step is an error naming the known ones
    found = list_records(project.store, LogQuery(step=step, limit=limit))
    if as_json:
        click.echo(json.dumps([_summary(s) for s in found], indent=2))
        return
    for stored in found:
        r = stored.record
        dirty = "+dirty" if r.dirty else ""
        alt = "  (alt: another record of this signature)" if stored.alternate else ""
        click.echo(
            f"{r.step:<16} {short(r.signature)}  {short(r.source_commit, 7)}{dirty:<6}  "
            f"{when(r.started_at)}  {seconds(r.duration):>8}{alt}"
        )


@click.command()
@click.argument("ident", metavar="RECORD|STEP")
@click.option("--json", "as_json", is_flag=True, help="record.json and the record's commit.")
@click.option("--stdout", "stream", flag_value="stdout", help="Print the captured stdout.")
@click.option("--stderr", "stream", flag_value="stderr", help="Print the captured stderr.")
@workflow_option
@click.pass_obj
def show(options: Options, ident: str, as_json: bool, stream: str | None) -> None:
    """One record in full."""
    project = options.project()
    stored = project.store.resolve(ident, list(project.workflow.steps))
    if stream is not None:
        sys.stdout.buffer.write(project.store.log(stored, stream))
        sys.stdout.flush()
        return
    r = stored.record
    if as_json:
        click.echo(json.dumps({"record": stored.commit, **r.model_dump(mode="json")}, indent=2))
        return
    c = r.components
    lines = [
        f"record     {stored.commit}",
        f"step       {r.step}",
        f"signature  {r.signature}",
        f"commit     {r.source_commit or '(none: unborn HEAD)'}{'  (dirty)' if r.dirty else ''}",
        f"started    {when(r.started_at)}",
        f"duration   {seconds(r.duration)}",
        f"exit       {r.exit_status}",
        f"host       {r.host}",
        f"gitcache   {r.gitcache_version}",
        f"command    {r.command}",
    ]
    if r.dirty_files:
        lines.append(f"dirty      {', '.join(r.dirty_files)}")
    lines.append("params")
    lines += [f"  {k} = {json.dumps(v)}" for k, v in sorted(c.params.items())]
    lines.append("inputs")
    lines += [f"  {blob}  {path}" for path, blob in c.inputs.items()]
    lines.append("outputs")
    lines += [f"  {o.blob}  {o.size:>10}  {o.path}" for o in r.outputs]
    if c.env:
        lines.append("env")
        lines += [f"  {k} = {v!r}" for k, v in c.env.items()]
    lines.append("code")
    lines += [f"  {line}" for line in c.code.splitlines()]
    for name in ("stdout", "stderr"):
        size = len(project.store.log(stored, name))
        lines.append(f"{name:<10} {size} bytes (gitcache show {short(stored.commit)} --{name})")
    click.echo("\n".join(lines))


COMMANDS = [log, show]

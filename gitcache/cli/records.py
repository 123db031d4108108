"""`gitcache log` and `gitcache show`: reading records."""

from __future__ import annotations

import json
import sys

import click

from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import seconds, short, when
from gitcache.cli.text import printable
from gitcache.errors import ConfigError
from gitcache.gitrepo import GitRepo
from gitcache.history import LogQuery, item_latest, list_records, parse_param_filters
from gitcache.params import decoded_text
from gitcache.provenance import SNAPSHOT_DIR, checkout_commands
from gitcache.recordindex import RecordSummary
from gitcache.rewrites import RewriteMap
from gitcache.store import StoredRecord
from gitcache.sweeps import encoded_label, parse_selector, split_target
from gitcache.timespec import parse_when
from gitcache.workflow import Workflow


def _item_filter(workflow: Workflow, step: str | None, selector: str | None) -> dict[str, str]:
    """`log 'train[lr=0.1]'`: the values a record's item must have."""
    if step is None or selector is None:
        return {}
    template = workflow.steps.get(step)
    if template is None or template.sweep is None:
        raise ConfigError(f"{step}[{selector}]: step {step!r} is not a sweep; it has no items")
    return parse_selector(template, selector)


def _summary(r: RecordSummary) -> dict[str, object]:
    return {
        "record": r.commit,
        "step": r.step,
        "signature": r.signature,
        "source_commit": r.source_commit,
        "dirty": r.dirty,
        "started_at": r.started_at,
        "duration": r.duration,
        "exit_status": r.exit_status,
        "params": r.params,
        "alternate": r.alternate,
        **({} if r.item is None else {"label": r.label, "item": r.item}),
    }


@click.command()
@click.argument("step", required=False)
@click.option(
    "-n", "--max-count", "limit", type=click.IntRange(min=1), help="Show at most N records."
)
@click.option(
    "--since", metavar="WHEN", help="Only records started since a date (2026-01-31) or age (2d)."
)
@click.option(
    "--param",
    "param_filters",
    multiple=True,
    metavar="NAME=VALUE",
    help="Only records that used this parameter value (repeatable).",
)
@click.option(
    "--commit",
    "rev",
    metavar="REV",
    help="Only records made at REV, or carried over to it by amend or rebase.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@workflow_option
@click.pass_obj
def log(
    options: Options,
    step: str | None,
    limit: int | None,
    since: str | None,
    param_filters: tuple[str, ...],
    rev: str | None,
    as_json: bool,
) -> None:
    """Records, newest first: step, short signature, commit, when, duration."""
    project = options.project(require_workflow=False)
    selector = None
    if step is not None:
        step, selector = split_target(step)
    # A step no longer in the workflow may still have records; only a name with none
    # is an error, naming the known steps.
    if (
        step is not None
        and step not in project.workflow.steps
        and not any(s.step == step for s in project.store.summaries())
    ):
        project.workflow.select([step])
    query = LogQuery(
        step=step,
        item=_item_filter(project.workflow, step, selector),
        limit=limit,
        since=None if since is None else parse_when(since, "--since"),
        params=parse_param_filters(list(param_filters), project.workflow.params),
        commit=None if rev is None else project.repo.resolve_commit(rev),
    )
    found = list_records(project.store, query)
    carried = {s.commit for s in found if query.commit not in (None, s.source_commit)}
    if as_json:
        rows = [_summary(s) for s in found]
        if query.commit is not None:
            for row, summary in zip(rows, found, strict=True):
                row["carried_over"] = summary.commit in carried
        click.echo(json.dumps(rows, indent=2))
        return
    lines = []
    for r in found:
        dirty = "+dirty" if r.dirty else ""
        alt = "  (alt: another record of this signature)" if r.alternate else ""
        lines.append(
            f"{r.label:<16} {short(r.signature)}  {short(r.source_commit, 7)}{dirty:<6}  "
            f"{when(r.started_at)}  {seconds(r.duration):>8}{alt}"
            + ("  carried over" if r.commit in carried else "")
        )
    if lines:  # one write: 10,000 separate echoes cost a tenth of a second
        click.echo(printable("\n".join(lines)))


@click.command()
@click.argument("ident", metavar="RECORD|STEP")
@click.option("--json", "as_json", is_flag=True, help="record.json and the record's commit.")
@click.option("--stdout", "stream", flag_value="stdout", help="Print the captured stdout.")
@click.option("--stderr", "stream", flag_value="stderr", help="Print the captured stderr.")
@workflow_option
@click.pass_obj
def show(options: Options, ident: str, as_json: bool, stream: str | None) -> None:
    """One record in full."""
    project = options.project(require_workflow=False)
    stored = item_latest(project.store, project.workflow, ident) or project.store.resolve(
        ident, list(project.workflow.steps)
    )
    if stream is not None:
        for piece in project.store.log_pieces(stored, stream):  # a chunk at a time
            sys.stdout.buffer.write(piece)
        sys.stdout.flush()
        return
    r = stored.record
    if as_json:
        click.echo(json.dumps({"record": stored.commit, **r.document()}, indent=2))
        return
    c = r.components
    lines = [
        f"record     {stored.commit}",
        f"step       {r.step if r.item is None else encoded_label(r.step, r.item)}",
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
    lines += _code_lines(project.repo, stored)
    lines.append("params")
    lines += [f"  {k} = {decoded_text(v) or json.dumps(v)}" for k, v in sorted(c.params.items())]
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
        size = project.store.log_size(stored, name)
        lines.append(f"{name:<10} {size} bytes (gitcache show {short(stored.commit)} --{name})")
    click.echo(printable("\n".join(lines)))


def _code_lines(repo: GitRepo, stored: StoredRecord) -> list[str]:
    """How to get the code back, and what amend or rebase made of its commit."""
    source = stored.record.source_commit
    snapshot = repo.tree_entry(repo.commit_tree(stored.commit), SNAPSHOT_DIR) is not None
    lines = []
    command = checkout_commands(stored.commit, source, snapshot)
    if command is not None:
        lines.append(f"checkout   {command}")
    if source is not None:
        lines += [f"rewritten  as {new[:12]}" for new in RewriteMap.load(repo).successors(source)]
    return lines


COMMANDS = [log, show]

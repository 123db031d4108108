"""`gitcache push` and `gitcache fetch`, and the remote wiring of `gitcache run`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from gitcache import sharing
from gitcache.cli.main import Options, workflow_option
from gitcache.cli.output import short, warn
from gitcache.engine import RunSummary
from gitcache.errors import ConfigError, RemoteError
from gitcache.gitrepo import GitRepo
from gitcache.project import Project
from gitcache.remote import ProgressSink, Remote, choose_remote
from gitcache.store import RecordStore

_LISTED = 10  # refused refs named one per line; a hostile remote may hold thousands


def progress_sink() -> ProgressSink | None:
    """git's own progress display, passed through on a terminal only."""
    if not sys.stderr.isatty():
        return None

    def write(chunk: bytes) -> None:
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()

    return write


def _store(options: Options) -> RecordStore:
    """The record store alone: fetch and push work without a gitcache.toml."""
    repo = GitRepo.discover(options.directory)
    repo.on_wait = warn
    return RecordStore(repo, warn)


def _split(options: Options, args: Sequence[str]) -> tuple[str | None, list[str]]:
    """`[REMOTE] [STEP...]`: the first word is a remote if git knows it as one, else a step."""
    if not args:
        return None, []
    try:
        choose_remote(_store(options).repo, args[0], cwd=options.directory)
    except RemoteError:
        project: Project = options.project()
        if args[0] not in project.workflow.steps:
            raise
        return None, list(args)
    return args[0], list(args[1:])


@click.command()
@click.argument("args", nargs=-1, metavar="[REMOTE] [STEP...]")
@workflow_option
@click.pass_obj
def push(options: Options, args: tuple[str, ...]) -> None:
    """Send records (refs/gitcache/) to REMOTE; with STEPs, only those steps' records."""
    name, steps = _split(options, args)
    store = _store(options)
    if steps:
        options.project().workflow.select(steps)  # an unknown step: error naming the known
    remote = choose_remote(store.repo, name, for_push=True, cwd=options.directory)
    refs = sharing.refs_of_steps(store, steps) if steps else None
    if refs == []:
        click.echo(f"gitcache: no records of {', '.join(steps)} to push", err=True)
        return
    report = sharing.push(store, remote, refs, progress_sink())
    _print_push(report)
    if report.rejected:
        raise RemoteError(
            f"{remote.name!r} refused {len(report.rejected)} ref(s), first "
            f"{report.rejected[0][0]}: {report.rejected[0][1]}"
        )


def _print_push(report: sharing.PushReport) -> None:
    for signature in report.diverged:
        click.echo(
            f"gitcache: {report.remote} has another record for signature {short(signature)}; "
            "ours was pushed beside it (alt)",
            err=True,
        )
    for ref, why in report.rejected:
        click.echo(f"gitcache: {report.remote} refused {ref}: {why}", err=True)
    click.echo(
        f"gitcache: pushed to {report.remote}: {len(report.created)} new, "
        f"{report.up_to_date} already there, {len(report.diverged)} diverged",
        err=True,
    )


@click.command()
@click.argument("name", metavar="[REMOTE]", required=False)
@click.pass_obj
def fetch(options: Options, name: str | None) -> None:
    """Bring records from REMOTE; never replaces or loses a local record."""
    store = _store(options)
    remote = choose_remote(store.repo, name, cwd=options.directory)
    report = sharing.fetch(store, remote, progress_sink())
    store.flush_index()
    for ref, why in report.refused[:_LISTED]:
        warn(f"refused {ref} from {remote.name}: {why}")
    if len(report.refused) > _LISTED:
        warn(f"refused {len(report.refused) - _LISTED} more refs from {remote.name}")
    for signature in report.alternates:
        click.echo(
            f"gitcache: {remote.name} has another record for signature {short(signature)}; "
            "kept beside the local one (alt, see gitcache log)",
            err=True,
        )
    for ref in report.kept_local:
        click.echo(f"gitcache: {ref} differs on {remote.name}; kept the local one", err=True)
    click.echo(
        f"gitcache: fetched from {remote.name}: {len(report.added)} new records, "
        f"{len(report.alternates)} alternates, {len(report.others)} rewrite mappings, "
        f"{report.unchanged} unchanged, {len(report.refused)} refused",
        err=True,
    )


# -- gitcache run --remote / push_on_record ------------------------------------------------


def run_remote(project: Project, name: str | None, cwd: Path) -> Remote | None:
    """The remote a run uses (`--remote`, else config `remote`); checked before anything runs."""
    name = name or project.workflow.config.remote
    if name is None:
        return None
    try:
        return choose_remote(project.repo, name, cwd=cwd)
    except RemoteError as exc:
        raise ConfigError(exc.message, exc.hint) from None


def lookup(project: Project, remote: Remote | None) -> sharing.RemoteLookup | None:
    return None if remote is None else sharing.RemoteLookup(project.store, remote, warn)


def push_new_records(project: Project, remote: Remote | None, summary: RunSummary) -> None:
    """With `push_on_record = true`: push the records this run wrote; a failure is a warning."""
    if not project.workflow.config.push_on_record:
        return
    written = [r.record for r in summary.results if r.outcome in ("ran", "recorded") and r.record]
    if not written:
        return
    try:
        target = remote or choose_remote(project.repo, None, for_push=True)
        report = sharing.push(project.store, target, sharing.records_written(written))
    except RemoteError as exc:
        warn(f"push_on_record: {exc.message}; the records stay local (gitcache push later)")
        return
    _print_push(report)


COMMANDS = [push, fetch]

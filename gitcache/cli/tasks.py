"""`gitcache run DIR/*.json`: the task-file form of `gitcache run` (docs/python.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from gitcache.errors import ConfigError, StepFailed
from gitcache.python.taskrun import TaskOutcome, run_task_files


def run_tasks(
    directory: Path, paths: Sequence[str], jobs: int, quiet: bool, remote: str | None = None
) -> int:
    """Run task files; print one line per task; the exit code. `remote`: asked for a
    task's record on a local miss (else `remote` of gitcache.toml, if any)."""
    others = [p for p in paths if not p.endswith(".json")]
    if others:
        raise ConfigError(
            f"cannot mix task files and step names: {', '.join(others)}",
            hint="run the task files and the steps in two commands",
        )
    from gitcache.gitrepo import GitRepo

    root = GitRepo.discover(directory).root

    def report(outcome: TaskOutcome) -> None:
        name = Path(outcome.path).name
        if outcome.code_changed:
            click.echo(
                f"gitcache: warning: {name}: the code of step {outcome.step} changed since "
                "the task was saved (it ran with the code there is now)",
                err=True,
            )
        if outcome.outcome == "failed":
            click.echo(
                f"gitcache: error: task {name} ({outcome.step}) failed: {outcome.detail}", err=True
            )
        elif not quiet:
            what = f"{outcome.detail}, skipped" if outcome.outcome == "skipped" else "ran"
            sig = (outcome.signature or "")[:12]
            click.echo(f"gitcache: [{outcome.step}] {name} {sig}: {what}", err=True)

    outcomes = run_task_files(
        [str(directory / p) if not Path(p).is_absolute() else p for p in paths],
        root,
        jobs,
        report,
        _remote_location(remote, directory),
    )
    return StepFailed.exit_code if any(o.outcome == "failed" for o in outcomes) else 0


def _remote_location(remote: str | None, directory: Path) -> str | None:
    """A remote given as a relative path, made absolute (workers run at the root)."""
    if remote is None or "://" in remote:
        return remote
    local = directory / remote
    return str(local.resolve()) if local.exists() else remote

"""Printing: the terminal reporter for runs, and small formatting helpers."""

from __future__ import annotations

import sys
import threading
from datetime import datetime

import click

from gitcache.engine import RunSummary, StepResult

_LABELS = {
    "skipped": "up to date",
    "restored": "restored from git",
    "ran": "ran",
    "recorded": "recorded existing outputs",
    "verified": "verified",
    "mismatch": "MISMATCH",
    "failed": "FAILED",
    "would-run": "would run",
    "would-restore": "would restore from git",
    "pending": "not run",
}


def warn(message: str) -> None:
    click.echo(f"gitcache: warning: {message}", err=True)


def short(oid: str | None, n: int = 12) -> str:
    return "-" if oid is None else oid[:n]


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class TerminalReporter:
    """Streams step output as it comes; gitcache's own lines go to stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()

    def step_started(self, step: str, action: str) -> None:
        if not self.quiet:
            click.echo(f"gitcache: {step}: {action}", err=True)

    def output(self, step: str, stream: str, data: bytes) -> None:
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        with self._lock:
            target.write(data)
            target.flush()

    def warning(self, message: str) -> None:
        warn(message)

    def step_finished(self, result: StepResult) -> None:
        if self.quiet:
            return
        label = _LABELS[result.outcome]
        line = f"gitcache: {result.step}: {label}"
        if result.record is not None:
            line += f" [{short(result.record.record.signature)}]"
        if result.outcome == "ran" and result.record is not None:
            line += f" in {seconds(result.record.record.duration)}"
        if result.detail and result.outcome in ("failed", "restored", "mismatch", "skipped"):
            line += f" ({result.detail})"
        click.echo(line, err=True)
        for m in result.mismatches:
            click.echo(
                f"Signature mismatch: step {result.step}: {m.path}: recorded "
                f"{m.recorded or 'nothing'}, worktree {m.worktree or 'missing'}",
                err=True,
            )

    def summary(self, summary: RunSummary) -> None:
        if self.quiet:
            return
        counts: dict[str, int] = {}
        for r in summary.results:
            counts[_LABELS[r.outcome]] = counts.get(_LABELS[r.outcome], 0) + 1
        parts = ", ".join(f"{n} {label}" for label, n in counts.items())
        total = len(summary.results)
        click.echo(f"gitcache: {total} step{'s' if total != 1 else ''}: {parts}", err=True)

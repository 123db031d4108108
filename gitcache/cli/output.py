"""Printing: the terminal reporter for runs, and small formatting helpers."""

from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Sequence
from datetime import datetime

import click

from gitcache.engine import RunSummary, StepResult
from gitcache.transfer import Meter

_LABELS = {
    "skipped": "up to date",
    "stored": "up to date (outputs kept in the store)",
    "restored": "restored from git",
    "ran": "ran",
    "recorded": "recorded existing outputs",
    "verified": "verified",
    "mismatch": "MISMATCH",
    "failed": "FAILED",
    "would-run": "would run",
    "would-record": "would record existing outputs",
    "would-restore": "would restore from git",
    "pending": "not run",
}


def warn(message: str) -> None:
    click.echo(f"gitcache: warning: {message}", err=True)


def some_paths(paths: Sequence[str], shown: int = 3) -> str:
    """Paths for one short line: all of a few, else how many and the first `shown`."""
    if len(paths) <= shown:
        return ", ".join(paths)
    return f"{len(paths)} files: {', '.join(paths[:shown])}, …"


def note(message: str) -> None:
    click.echo(f"gitcache: {message}", err=True)


def short(oid: str | None, n: int = 12) -> str:
    return "-" if oid is None else oid[:n]


def when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError):  # a fetched record's text; local time past year 9999
        return iso


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class TerminalReporter:
    """Streams step output as it comes; gitcache's own lines go to stderr.

    With `prefix` (several steps at once) output is passed on in whole lines, each
    prefixed by its step's name. With `total` and a terminal on stderr, a progress
    line (steps done, steps running) stays at the bottom; it is never drawn when
    stderr is not a terminal.
    """

    def __init__(self, quiet: bool = False, prefix: bool = False, total: int = 0) -> None:
        self.quiet = quiet
        self.prefix = prefix
        self._lock = threading.RLock()
        self._partial: dict[tuple[str, str], bytes] = {}
        self._progress = Progress(total) if not quiet and _tty() else None

    def expect(self, total: int) -> None:
        """The number of steps (and items) the run goes through, for the progress line."""
        if self._progress is not None:
            self._progress.total = total

    def step_started(self, step: str, action: str) -> None:
        if self._progress is not None:
            self._progress.started(step)
        if not self.quiet:
            self._line(f"gitcache: {step}: {action}")
        self._redraw()

    def output(self, step: str, stream: str, data: bytes) -> None:
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        with self._lock:
            if self.prefix:
                data = self._whole_lines(step, stream, data)
                if not data:
                    return
            self._clear()
            target.write(data)
            target.flush()
            if data.endswith(b"\n"):
                self._redraw()

    def _whole_lines(self, step: str, stream: str, data: bytes) -> bytes:
        buffered = self._partial.pop((step, stream), b"") + data
        complete, newline, rest = buffered.rpartition(b"\n")
        if rest:
            self._partial[(step, stream)] = rest
        if not newline:
            return b""
        tag = f"[{step}] ".encode()
        return b"".join(tag + line + b"\n" for line in complete.split(b"\n"))

    def _flush_partial(self, step: str) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((step, stream), b"")
            if rest:
                self.output(step, stream, rest + b"\n")

    def transfer(self, meter: Meter) -> None:
        """Files and bytes stored or restored so far (the meter tells only a transfer
        that has lasted a second, ten times a second at most); on a terminal only."""
        if self._progress is None:
            return
        with self._lock:
            self._progress.transfer(None if meter.finished else meter.text())

    def warning(self, message: str) -> None:
        with self._lock:
            self._clear()
            warn(message)
            self._redraw()

    def _line(self, text: str) -> None:
        with self._lock:
            self._clear()
            click.echo(text, err=True)

    def _clear(self) -> None:
        if self._progress is not None:
            self._progress.clear()

    def _redraw(self) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress.draw()

    def step_finished(self, result: StepResult) -> None:
        with self._lock:
            self._flush_partial(result.step)
            if self._progress is not None:
                self._progress.finished(result.step)
            self._finished(result)
            self._redraw()

    def _finished(self, result: StepResult) -> None:
        self._clear()
        for m in result.mismatches:  # printed even with --quiet: they are the error
            recorded = m.recorded or ("missing" if m.worktree else "an empty directory")
            click.echo(
                f"Signature mismatch: step {result.step}: {m.path}: recorded "
                f"{recorded}, worktree {m.worktree or 'missing'}",
                err=True,
            )
        if result.outcome == "mismatch" and not result.mismatches:
            click.echo(f"Signature mismatch: step {result.step}: {result.detail}", err=True)
        if self.quiet:
            return
        label = _LABELS[result.outcome]
        line = f"gitcache: {result.step}: {label}"
        if result.record is not None:
            line += f" [{short(result.signature or result.record.record.signature)}]"
        if result.outcome == "ran" and result.record is not None:
            line += f" in {seconds(result.record.record.duration)}"
        if result.detail and result.outcome in (
            "failed",
            "restored",
            "skipped",
            "pending",
            "would-run",
        ):
            line += f" ({result.detail})"
        elif result.outcome == "restored":
            changes = [some_paths(sorted(result.restored))] if result.restored else []
            if result.removed:
                changes.append(f"removed {some_paths(sorted(result.removed))}")
            line += f" ({'; '.join(changes)})" if changes else ""
        click.echo(line, err=True)

    def summary(self, summary: RunSummary) -> None:
        self._clear()
        if self.quiet:
            return
        counts: dict[str, int] = {}
        for r in summary.results:
            counts[_LABELS[r.outcome]] = counts.get(_LABELS[r.outcome], 0) + 1
        parts = ", ".join(f"{n} {label}" for label, n in counts.items())
        total = len(summary.results)
        if not total:  # an empty gitcache.toml, or a foreach that made no items
            click.echo("gitcache: no steps to run", err=True)
            return
        click.echo(f"gitcache: {total} step{'s' if total != 1 else ''}: {parts}", err=True)


def _tty() -> bool:
    return sys.stderr.isatty()


class Progress:
    """One status line at the bottom of a terminal: `[done/total] running: a, b`, or
    `storing STEP: n/m files` while many files are stored or restored."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.running: list[str] = []
        self._shown = False
        self._transfer: str | None = None

    def transfer(self, text: str | None) -> None:
        """Show a store's or restore's progress instead of the steps (None: it ended)."""
        self._transfer = text
        self.clear()
        self.draw()

    def started(self, step: str) -> None:
        if step not in self.running:
            self.running.append(step)

    def finished(self, step: str) -> None:
        self.done += 1
        self.total = max(self.total, self.done)  # a foreach fanned out into more items
        if step in self.running:
            self.running.remove(step)

    def draw(self) -> None:
        if self._transfer is not None:
            text = self._transfer
        elif self.running and self.total > 1:
            text = f"[{self.done}/{self.total}] running: {', '.join(self.running)}"
        else:
            return
        width = shutil.get_terminal_size().columns - 1
        sys.stderr.write("\r\x1b[K" + text[:width])
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._shown = False

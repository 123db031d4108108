"""Keeping a run's lines in order while sweep items overlap (scheduler.py's pipeline).

With one job an item writes its record after the next item's command started, so the
next item's `running` line and its command's output would come before the first
item's `ran` line. `InOrder` holds every line that comes while an item that handed
off has not finished, and shows it right after that item's result: the lines read as
if the items had run strictly one after the other, ~1 ms (one record) late.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Waiting:
    """A unit that handed off: its result once known, and the lines that came after."""

    key: str
    result: Callable[[], None] | None = None
    after: list[Callable[[], None]] = field(default_factory=list)


class InOrder:
    """Shows lines (callables that print) now, or after the units still recording."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []  # in hand-off order

    def handed_off(self, key: str) -> None:
        with self._lock:
            self._waiting.append(_Waiting(key))

    def show(self, line: Callable[[], None]) -> None:
        with self._lock:
            if self._waiting:
                self._waiting[-1].after.append(line)
            else:
                line()

    def finished(self, key: str, result: Callable[[], None]) -> None:
        """`key`'s result line; shown with what waited for it once every unit that
        handed off before it has finished too."""
        with self._lock:
            entry = next((w for w in self._waiting if w.key == key), None)
            if entry is None:
                if self._waiting:
                    self._waiting[-1].after.append(result)
                else:
                    result()
                return
            entry.result = result
            while self._waiting and self._waiting[0].result is not None:
                done = self._waiting.pop(0)
                assert done.result is not None
                done.result()
                for line in done.after:
                    line()

    def flush(self) -> None:
        """Show whatever still waits (the run ended: a signal, an error)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            for entry in waiting:
                if entry.result is not None:
                    entry.result()
                for line in entry.after:
                    line()

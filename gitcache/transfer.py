"""How far one store or restore of a step's outputs has got: files and bytes.

The engine makes one Meter per store or restore and the object writer and the
restore add to it as bytes go by, chunk by chunk, so one big file moves the count
too. The meter tells its listener (the terminal's progress line) at most ten times a
second, and only once the transfer has lasted `QUIET_S`: a short one stays silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

QUIET_S: Final = 1.0  # seconds a transfer runs before it is shown
_EVERY_S: Final = 0.1  # at most ten redraws a second


class Meter:
    def __init__(
        self,
        step: str,
        action: str,
        files: int,
        size: int | None = None,
        tell: Callable[[Meter], None] | None = None,
    ) -> None:
        self.step = step
        self.action = action  # "storing", "restoring"
        self.files = files
        self.size = size  # total bytes when known beforehand (a restore), else None
        self.files_done = 0
        self.bytes_done = 0
        self._tell = tell
        self._started = time.monotonic()
        self._told = 0.0
        self.shown = False  # told at least once: the listener clears its line at the end

    def add(self, count: int) -> None:
        """`count` more bytes stored or written."""
        self.bytes_done += count
        self._maybe_tell()

    def file_done(self) -> None:
        self.files_done += 1
        self._maybe_tell()

    def finish(self) -> None:
        """The transfer is over: a listener that was told hears it once more."""
        if self.shown and self._tell is not None:
            self.files_done = self.files
            self._tell(self)

    @property
    def finished(self) -> bool:
        return self.files_done >= self.files

    def text(self) -> str:
        size = f"/{_megabytes(self.size)}" if self.size is not None else ""
        return (
            f"{self.action} {self.step}: {self.files_done}/{self.files} files, "
            f"{_megabytes(self.bytes_done)}{size} MB"
        )

    def _maybe_tell(self) -> None:
        if self._tell is None:
            return
        now = time.monotonic()
        if now - self._started < QUIET_S or now - self._told < _EVERY_S:
            return
        self._told = now
        self.shown = True
        self._tell(self)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f}"

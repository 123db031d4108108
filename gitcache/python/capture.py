"""stdout and stderr of a step's function: shown live and kept for the record's logs/.

`sys.stdout` and `sys.stderr` are replaced, for the duration of the call, by tees
that write through to what they were (the terminal, a notebook's output area)
and into a file each. Output written to the file descriptors directly (by C code
or a child process) is shown but not kept.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_SWAP = threading.Lock()


class _Tee:
    def __init__(self, shown: IO[str], kept: IO[bytes]) -> None:
        self._shown = shown
        self._kept = kept

    def write(self, text: str) -> int:
        self._shown.write(text)
        self._kept.write(text.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        self._shown.flush()
        self._kept.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno...
        return getattr(self._shown, name)


@contextmanager
def captured(scratch: Path) -> Iterator[dict[str, Path]]:
    """Tee sys.stdout/sys.stderr into scratch/stdout and scratch/stderr."""
    scratch.mkdir(parents=True, exist_ok=True)
    logs = {name: scratch / name for name in ("stdout", "stderr")}
    with open(logs["stdout"], "wb") as out, open(logs["stderr"], "wb") as err:
        with _SWAP:
            before = sys.stdout, sys.stderr
            sys.stdout = _Tee(before[0], out)
            sys.stderr = _Tee(before[1], err)
        try:
            yield logs
        finally:
            with _SWAP:
                sys.stdout.flush()
                sys.stderr.flush()
                sys.stdout, sys.stderr = before

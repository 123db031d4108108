"""Execute one step's command: output streams live to a sink and is captured to files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from gitcache.errors import ConfigError, Interrupted

OutputSink = Callable[[str, bytes], None]  # (stream name, chunk); called from pump threads


@dataclass(frozen=True)
class Execution:
    exit_status: int
    started_at: str
    duration: float
    logs: dict[str, Path]


def shell_argv(shell: str, command: str) -> list[str]:
    if shell == "sh":
        return ["/bin/sh", "-c", command]
    found = shutil.which(shell)
    if found is None:
        raise ConfigError(f"shell {shell!r} is not installed")
    return [found, "-c", command]


def execute(
    argv: list[str],
    cwd: Path,
    scratch: Path,
    sink: OutputSink,
    env: Mapping[str, str] | None = None,
) -> Execution:
    """Run argv; on Ctrl-C stop the child and raise Interrupted (the caller records nothing)."""
    scratch.mkdir(parents=True, exist_ok=True)
    logs = {name: scratch / name for name in ("stdout", "stderr")}
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(
            target=_pump, args=(proc.stdout, logs["stdout"], "stdout", sink), daemon=True
        ),
        threading.Thread(
            target=_pump, args=(proc.stderr, logs["stderr"], "stderr", sink), daemon=True
        ),
    ]
    for pump in pumps:
        pump.start()
    try:
        status = proc.wait()
        for pump in pumps:
            pump.join()
    except KeyboardInterrupt:
        _stop(proc)
        raise Interrupted("interrupted; the step's record was not written") from None
    return Execution(status, started, time.monotonic() - t0, logs)


def _pump(pipe: IO[bytes], path: Path, stream: str, sink: OutputSink) -> None:
    with open(path, "wb") as capture, pipe:
        fd = pipe.fileno()
        while chunk := os.read(fd, 65536):
            capture.write(chunk)
            sink(stream, chunk)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """The terminal sent SIGINT to the child too; make sure it is really gone."""
    for sig, wait in ((signal.SIGINT, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue

"""Execute one step's command: output streams live to a sink and is captured to files."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from gitcache.errors import ConfigError, Interrupted
from gitcache.processes import (
    Children,
    Terminated,
    leave_signals_to_main_thread,
    stop_signal,
    stopped_by,
)

OutputSink = Callable[[str, bytes], None]  # (stream name, chunk); called from pump threads
_PUMP_GRACE_SECONDS = 10.0


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
    children: Children | None = None,
) -> Execution:
    """Run argv in a process group of its own; output to `sink` and to scratch/<stream>.

    On Ctrl-C, SIGTERM or SIGHUP (in the thread that receives signals) every command
    in `children` is stopped and Interrupted is raised: the caller records nothing.
    """
    children = children if children is not None else Children()
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
        process_group=0,  # signals reach the command's whole tree, and only it (processes.py)
    )
    children.add(proc)  # at once: a signal may come any time now (killed if stopping)
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
    except (KeyboardInterrupt, Terminated) as exc:
        signum = stop_signal(exc)
        children.stop_all(signum)
        for pump in pumps:
            # Once the group is gone the pipes end at once; a loaded machine may still
            # take a moment to run the pump. Bounded: a process that left the group
            # (setsid) may hold the pipes for ever.
            pump.join(timeout=_PUMP_GRACE_SECONDS)
        raise Interrupted(
            f"{stopped_by(signum)}; the step's record was not written", signum=signum
        ) from None
    finally:
        children.discard(proc)
    return Execution(status, started, time.monotonic() - t0, logs)


def _pump(pipe: IO[bytes], path: Path, stream: str, sink: OutputSink) -> None:
    leave_signals_to_main_thread()
    showing = True
    with open(path, "wb") as capture, pipe:
        fd = pipe.fileno()
        while chunk := os.read(fd, 65536):
            capture.write(chunk)
            if showing:
                try:
                    sink(stream, chunk)
                except (OSError, ValueError):
                    # The terminal or pipe gitcache writes to is gone (`| head`, or
                    # gitcache exiting after a signal): keep capturing, stop showing.
                    showing = False

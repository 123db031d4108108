"""Execute one step's command: output streams live to a sink and is captured to files."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
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
    stop_signal,
    stopped_by,
)

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
    children: Children | None = None,
    while_running: Callable[[], float | None] | None = None,
    held_open: Callable[[], None] | None = None,
) -> Execution:
    """Run argv in a process group of its own; output to `sink` and to scratch/<stream>.

    `while_running` is called once the command has started, before its output is
    read, and again after the seconds it returns (None: not again) for as long as the
    command runs: work of the caller's that the command's run time hides
    (it must raise nothing but the signals' exceptions; the pipes hold what the
    command prints meanwhile).

    The command has ended when its process has exited and its output has ended: a
    process it started in the background that still holds the output (`server &`)
    may still be writing the step's outputs, so it is waited for. `held_open` is
    called once if that wait lasts over a second, so that the wait can be explained.

    On Ctrl-C, SIGTERM or SIGHUP (in the thread that receives signals) every command
    in `children` is stopped and Interrupted is raised: the caller records nothing.
    """
    children = children if children is not None else Children()
    scratch.mkdir(parents=True, exist_ok=True)
    logs = {name: scratch / name for name in ("stdout", "stderr")}
    started = datetime.now(UTC).isoformat(timespec="milliseconds")
    t0 = time.monotonic()
    with children.starting():  # a Ctrl-Z while it starts waits until it is known
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            process_group=0,  # signals reach the command's whole tree, and only it
        )
        children.add(proc)  # at once: a signal may come any time now (killed if stopping)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        due = None if while_running is None else _next_due(while_running)
        # Both pipes read by this thread (poll): two pump threads per command cost more
        # than a trivial command itself (thread start-up under the GIL).
        pidfd = _pidfd(proc) if held_open is not None or due is not None else None
        try:
            due = _pump(proc, logs, sink, while_running, due, held_open, pidfd)
            status = _wait(proc, while_running, due, pidfd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
    except (KeyboardInterrupt, Terminated) as exc:
        signum = stop_signal(exc)
        children.stop_all(signum)
        raise Interrupted(
            f"{stopped_by(signum)}; the step's record was not written", signum=signum
        ) from None
    finally:
        children.discard(proc)
        proc.stdout.close()
        proc.stderr.close()
    return Execution(status, started, time.monotonic() - t0, logs)


def _pump(
    proc: subprocess.Popen[bytes],
    logs: dict[str, Path],
    sink: OutputSink,
    while_running: Callable[[], float | None] | None = None,
    due: float | None = None,
    held_open: Callable[[], None] | None = None,
    pidfd: int | None = None,
) -> float | None:
    """Copy both pipes to their capture files and to `sink` until both end, calling
    `while_running` when `due` (a time.monotonic() time) and then when it says, and
    `held_open` once the pipes outlast the process by _HELD_OPEN seconds (execute).
    Returns when `while_running` is due next (None: not again)."""
    assert proc.stdout is not None and proc.stderr is not None
    poller = select.poll()
    streams: dict[int, tuple[str, IO[bytes]]] = {}
    showing: set[int] = set()
    # The process's exit, seen through its pidfd (not reaped here: _wait does): from
    # then on, pipes still open belong to a process it left behind.
    if pidfd is not None and held_open is not None:
        poller.register(pidfd, select.POLLIN)
    tell_at: float | None = None  # when to call `held_open`
    with open(logs["stdout"], "wb") as out, open(logs["stderr"], "wb") as err:
        for pipe, name, file in ((proc.stdout, "stdout", out), (proc.stderr, "stderr", err)):
            fd = pipe.fileno()
            streams[fd] = (name, file)
            showing.add(fd)
            poller.register(fd, select.POLLIN)
        while streams:
            wake = min((t for t in (due, tell_at) if t is not None), default=None)
            if wake is None:
                events = poller.poll()
            else:
                events = poller.poll(max(0.0, wake - time.monotonic()) * 1000)
            now = time.monotonic()
            if due is not None and now >= due and while_running is not None:
                due = _next_due(while_running)
            if tell_at is not None and now >= tell_at and held_open is not None:
                held_open()
                tell_at = held_open = None
            for fd, _event in events:
                if fd == pidfd:  # exited; its output may still be draining
                    poller.unregister(fd)
                    tell_at = now + _HELD_OPEN
                    continue
                chunk = os.read(fd, 65536)
                name, capture = streams[fd]
                if not chunk:
                    poller.unregister(fd)
                    del streams[fd]
                    continue
                capture.write(chunk)
                if fd in showing:
                    try:
                        sink(name, chunk)
                    except (OSError, ValueError):
                        # The terminal or pipe gitcache writes to is gone (`| head`,
                        # or gitcache exiting after a signal): keep capturing, stop
                        # showing.
                        showing.discard(fd)
    return due


def _pidfd(proc: subprocess.Popen[bytes]) -> int | None:
    """A pidfd of the process (readable once it has exited); None without pidfds
    (Linux before 5.3, other systems)."""
    try:
        return os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return None


def _wait(
    proc: subprocess.Popen[bytes],
    while_running: Callable[[], float | None] | None,
    due: float | None,
    pidfd: int | None,
) -> int:
    """The command's exit status, calling `while_running` when due meanwhile: a
    command may run on long after closing its output (`exec >log 2>&1`).

    The exit is waited for through a pidfd in `poll`: `Popen.wait(timeout)` polls with
    sleeps of 0.5 ms and up, which would add that much to each quick sweep item."""
    if due is None or while_running is None:
        return proc.wait()
    poller = select.poll()
    if pidfd is not None:  # else the polling wait
        poller.register(pidfd, select.POLLIN)
    while due is not None:
        timeout = max(0.0, due - time.monotonic())
        if pidfd is not None:
            if poller.poll(timeout * 1000):
                break  # it exited: reaped below
        else:
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        due = _next_due(while_running)
    return proc.wait()


def _next_due(while_running: Callable[[], float | None]) -> float | None:
    """Call `while_running`; when it wants to be called again (None: never)."""
    again = while_running()
    return None if again is None else time.monotonic() + max(again, _AGAIN_MIN)


_AGAIN_MIN = 0.05  # seconds: `while_running` asking to be called at once is not a busy loop
_HELD_OPEN = 1.0  # seconds the output may outlast the process before `held_open` is told

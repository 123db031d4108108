"""The step commands running now, and stopping them when gitcache is told to stop.

Each command runs in a process group of its own (runner.py), so a signal reaches
the command's whole tree (`a && b | c` under `sh -c`) and nothing else: not gitcache,
not a `tee` gitcache's output is piped into. The terminal sends its signals to
gitcache's group only, so gitcache passes them on:

- SIGINT (Ctrl-C): Python's KeyboardInterrupt; SIGTERM and SIGHUP: `Terminated`.
  Either unwinds the run (no record is written) after `Children.stop_all` has sent
  the same signal to every command's group, then SIGTERM, then SIGKILL to what is
  left; gitcache exits 128 + the signal's number (130, 143, 129).
- SIGTSTP (Ctrl-Z) stops the commands, then gitcache; SIGCONT (`fg`) resumes both.

A SIGHUP that gitcache was started ignoring (`nohup`) stays ignored.

The other processes gitcache starts and waits for (the `git` of push, fetch and
`gc --prune`, the workers of `gitcache run DIR/*.json -j N`) stay in gitcache's group,
so Ctrl-C reaches them and ssh can still prompt on the terminal; SIGTERM and SIGHUP,
which reach gitcache alone, are passed on to each of them (`stopping_children`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

STOP_GRACE_SECONDS = 2.0  # after each signal, before the next, stronger one

SIGNAL_NAMES: dict[int, str] = {
    signal.SIGINT: "SIGINT",
    signal.SIGTERM: "SIGTERM",
    signal.SIGHUP: "SIGHUP",
}


class Terminated(BaseException):  # a signal, like KeyboardInterrupt: not an Exception
    """SIGTERM or SIGHUP arrived; unwinds like KeyboardInterrupt (finally blocks run)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_signal(exc: BaseException) -> int:
    """The signal a KeyboardInterrupt or Terminated stands for."""
    return exc.signum if isinstance(exc, Terminated) else int(signal.SIGINT)


def stopped_by(signum: int) -> str:
    """How the run ended, for the one line gitcache prints."""
    return "interrupted" if signum == signal.SIGINT else f"stopped by {SIGNAL_NAMES[signum]}"


class Group(Protocol):
    """A child process: `poll` says whether it still runs (reaping it if not). A step's
    command leads a process group of its own, and signals go to that group; a child
    in gitcache's group (git, a task worker) gets them itself."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


class Children:
    """The commands running now; each is the leader of its own process group."""

    def __init__(self) -> None:
        # Reentrant: the main thread's signal handlers take it, and may run while that
        # thread holds it.
        self._lock = threading.RLock()
        self._running: set[Group] = set()
        self._stopping = False
        self._starting = 0  # processes being started, not yet `add`ed
        self._suspend_held = False  # a Ctrl-Z came meanwhile

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Around starting a process and `add`ing it. A Ctrl-Z that comes meanwhile
        (the handler can run inside Popen, once the command already runs) is held back
        and raised again once the process is known: else it would stop gitcache and
        leave the new command running."""
        with self._lock:
            self._starting += 1
        try:
            yield
        finally:
            with self._lock:
                self._starting -= 1
                again = self._suspend_held and not self._starting
                if again:
                    self._suspend_held = False
            if again:
                os.kill(os.getpid(), signal.SIGTSTP)

    def hold_suspend(self) -> bool:
        """Whether a process is being started; if so, the Ctrl-Z waits for `starting`."""
        with self._lock:
            if self._starting:
                self._suspend_held = True
            return bool(self._starting)

    def add(self, proc: Group) -> None:
        """Track a command just started; if a stop has begun, kill it at once."""
        with self._lock:
            if not self._stopping:
                self._running.add(proc)
                return
        _stop_groups([proc], signal.SIGKILL)

    def discard(self, proc: Group) -> None:
        with self._lock:
            self._running.discard(proc)

    def signal_all(self, signum: int) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            _killpg(proc, signum)

    def stop_all(self, signum: int) -> None:
        """Stop every command's group: `signum`, then SIGTERM, then SIGKILL.

        Returns when no process of those groups is left (or SIGKILL was sent).
        Commands started after this call are killed at once (see `add`).
        """
        with self._lock:
            self._stopping = True
            running = list(self._running)
        _stop_groups(running, signum)


def _stop_groups(procs: list[Group], signum: int) -> None:
    steps: list[tuple[int, float | None]] = [(signum, STOP_GRACE_SECONDS)]
    if signum != signal.SIGTERM:
        steps.append((signal.SIGTERM, STOP_GRACE_SECONDS))
    steps.append((signal.SIGKILL, STOP_GRACE_SECONDS))
    try:
        for sig, grace in steps:
            alive = [p for p in procs if _group_alive(p)]
            if not alive:
                return
            for proc in alive:
                _killpg(proc, sig)
                if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    _killpg(proc, signal.SIGCONT)  # a stopped group cannot act on it
            _wait_groups(alive, grace)
    except KeyboardInterrupt:
        # Ctrl-C again while stopping: no more waiting.
        for proc in procs:
            _killpg(proc, signal.SIGKILL)
        raise


def _wait_groups(procs: list[Group], grace: float | None) -> None:
    deadline = None if grace is None else time.monotonic() + grace
    while any(_group_alive(p) for p in procs):
        if deadline is not None and time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _group_alive(proc: Group) -> bool:
    running = proc.poll() is None  # reap the leader: a zombie still counts as a member
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return running  # no such group: a child in gitcache's own group
    except PermissionError:
        return True
    return running or _live_member(proc.pid)


def _live_member(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running, not a zombie. A member whose
    parent died is reaped by PID 1, which in a container may be slow to do it or never
    do it: counted as alive, it would hold a stop for the whole grace of each signal.
    True when /proc cannot tell (not Linux)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                text = handle.read()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = text[text.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == b"%d" % pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _killpg(proc: Group, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        # No such group (a child in gitcache's own group): the process itself, while it
        # is unreaped (so its pid cannot be another process's).
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signum)
    except PermissionError:
        pass


FORWARDED = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTSTP})


_STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start_quiet(*threads: threading.Thread) -> None:
    """Start helper threads (hashing, writing chunks, reading a pipe) with Ctrl-C,
    SIGTERM and SIGHUP blocked in them: the kernel then gives those signals to the
    main thread only, so `signals_held` there keeps them all out. Never for a thread
    that starts commands: a child inherits its thread's signal mask."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        for thread in threads:
            thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block has run (they are raised right
    after it): for bookkeeping that must not stop half-way, such as a lock taken and
    released around it. Signals are the main thread's: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextmanager
def forwarding_signals(children: Children) -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise Terminated and Ctrl-Z stops the commands.

    Signal handlers belong to the main thread: elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def terminate(signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if fired:  # already stopping: the first one is being acted on
            return
        fired = True
        raise Terminated(signum)

    def suspend(_signum: int, _frame: FrameType | None) -> None:
        if children.hold_suspend():
            return  # raised again once the command being started is known
        children.signal_all(signal.SIGTSTP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        signal.signal(signal.SIGTSTP, suspend)
        children.signal_all(signal.SIGCONT)

    previous: dict[signal.Signals, signal._HANDLER] = {}
    handlers: list[tuple[signal.Signals, Callable[[int, FrameType | None], None]]] = [
        (signal.SIGTERM, terminate),
        (signal.SIGHUP, terminate),
        (signal.SIGTSTP, suspend),
    ]
    for signum, handler in handlers:
        if signal.getsignal(signum) == signal.SIG_IGN:
            continue  # nohup, or a shell without job control: keep ignoring it
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


@contextmanager
def stopping_children() -> Iterator[Children]:
    """For a block that starts processes (added to the Children it yields) and waits for
    them: Ctrl-C, SIGTERM and SIGHUP stop them as they stop a step's command
    (`Children.stop_all`: the signal, SIGTERM, SIGKILL), and so does any error leaving
    the block; the signal then goes on as KeyboardInterrupt or Terminated."""
    children = Children()
    with forwarding_signals(children):
        try:
            yield children
        except BaseException as exc:
            stopping = isinstance(exc, KeyboardInterrupt | Terminated)
            children.stop_all(stop_signal(exc) if stopping else signal.SIGTERM)
            raise


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, then as it was (left off if it
    was off: a caller's gc.disable() holds). For blocks that make tens of thousands of
    objects with no reference cycle (a restore, a record's outputs read from its tree):
    each collection they set off walks every object made so far and frees nothing."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

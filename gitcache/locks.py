"""Locks between gitcache processes, all released by the kernel when a process dies.

- Per-signature locks (flock): two processes about to run one signature run it once.
- Output locks (flock, `outputs_lock`): two processes never write one declared output at
  once (two runs of a step with other parameters, a restore while the step runs): else
  each could record the other's bytes under its own signature, a wrong hit for good.
- The objects lock: a reader/writer lock between everything that writes git objects
  before the refs that keep them, or relies on a record staying (a run, a Python
  step, a fetch, a rewrite mapping, `restore`, `remove --outputs`; shared) and what
  drops records (`gitcache gc`, `gitcache remove`; exclusive): `git gc --prune=now`
  deletes every unreachable object, so it must never run between a writer's first
  object and its ref transaction, and a record must not go while `remove --outputs`
  deletes the files it holds.

flock(2) locks are kernel locks: a crash or Ctrl-C never leaves a lock that
blocks the next run (no pid files).

A step's command runs while its gitcache holds the objects lock (shared) and the
step's signature lock. The command's environment names them (`held_env`), so a
gitcache it starts (`gitcache gc --prune`, `gitcache remove`, `gitcache run` of the
same step) that would wait for one of them fails at once (LockHeld) instead of
waiting forever for a process that waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import blake3

from gitcache.errors import LockHeld

OBJECTS_LOCK = "objects.lock"  # under <state dir>/locks/
HELD_ENV = "GITCACHE_HELD_LOCKS"  # lock files the gitcache that started a command holds
HELD_BY_ENV = "GITCACHE_HELD_BY"  # that gitcache's pid
HELD_OUTPUTS_ENV = "GITCACHE_HELD_OUTPUTS"  # the outputs whose locks it holds (a JSON list)
# Output locks are shared by outputs whose path hashes alike: a sweep of 10,000 items
# would otherwise create 10,000 lock files (a file costs 0.15-0.3 ms to create here). Two
# outputs in one bucket only wait for each other needlessly, and rarely.
OUTPUT_BUCKETS = 256


@functools.lru_cache(maxsize=16)  # asked a few times per step: a sweep has thousands
def objects_lock_path(state_dir: Path) -> Path:
    return state_dir / "locks" / OBJECTS_LOCK


def signature_lock_path(state_dir: Path, signature: str) -> Path:
    return state_dir / "locks" / f"{signature}.lock"


def held_env(paths: Iterable[Path], outputs: Sequence[str] = ()) -> dict[str, str]:
    """The environment entries telling a step's command which locks its gitcache holds
    (`outputs`: the declared outputs whose locks are among them)."""
    env = {
        HELD_ENV: os.pathsep.join(str(p.absolute()) for p in paths),
        HELD_BY_ENV: str(os.getpid()),
    }
    if outputs:
        env[HELD_OUTPUTS_ENV] = json.dumps(list(outputs))
    return env


_announced: dict[str, int] = {}  # lock path -> holders in this process that announce it
_announcing = threading.Lock()
# What the gitcache that started this process holds: kept whatever we announce.
_INHERITED = (os.environ.get(HELD_ENV), os.environ.get(HELD_BY_ENV))


@contextmanager
def announcing(paths: Iterable[Path]) -> Iterator[None]:
    """Name these held locks in this process's own environment while the block runs, so
    a gitcache that code in it starts (a Python step's function running `gitcache gc`)
    fails at once instead of waiting for us (as `held_env` does for a step's command)."""
    names = [str(p.absolute()) for p in paths]
    with _announcing:
        for name in names:
            _announced[name] = _announced.get(name, 0) + 1
        _publish()
    try:
        yield
    finally:
        with _announcing:
            for name in names:
                _announced[name] -= 1
                if not _announced[name]:
                    del _announced[name]
            _publish()


def _publish() -> None:
    inherited = [n for n in (_INHERITED[0] or "").split(os.pathsep) if n]
    if _announced:
        os.environ.update(held_env(Path(n) for n in [*inherited, *_announced]))
        return
    for name, value in zip((HELD_ENV, HELD_BY_ENV), _INHERITED, strict=True):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _check_not_held_above(path: Path, what: str) -> None:
    """LockHeld if the gitcache that started this process holds `path` (we would wait
    for it while it waits for us). Locks this process announced itself (`announcing`)
    are another thread's: waiting for them is fine."""
    if _held_above(path):
        pid = os.environ.get(HELD_BY_ENV, "?")
        raise LockHeld(
            f"{what}: {path} is held by the gitcache (pid {pid}) that started this command, "
            "until the command ends",
            hint="run it after that gitcache has finished, not from a step's command",
        )


def _held_above(path: Path) -> bool:
    """Whether the gitcache that started this process holds the lock `path`."""
    if os.environ.get(HELD_BY_ENV) == str(os.getpid()):
        return False
    return str(path.absolute()) in os.environ.get(HELD_ENV, "").split(os.pathsep)


def _open_lock_file(path: Path) -> int:
    """A descriptor of the lock file `path`, made (with its directory) if missing."""
    try:
        return os.open(path, _LOCK_FLAGS, 0o644)
    except FileNotFoundError:  # the first lock in this repository
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, _LOCK_FLAGS, 0o644)


class LockSpares:
    """Files of released signature locks, kept to lock other signatures with.

    Creating a file costs 0.15-0.3 ms on some file systems (ext4 here), renaming or
    linking one a few microseconds: a sweep's thousand items each taking a new
    signature's lock spent more on those files than on their records. A lock file is
    moved here (renamed, while still locked, as `gitcache gc` unlinks one) when its
    lock is released, and linked under the next signature's name when that one's
    lock file does not exist yet. `directory` is private to this process (a scratch
    directory, removed with what it holds at the end of the run).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._free: list[Path] = []
        self._count = 0
        self._lock = threading.Lock()

    def open(self, path: Path) -> int | None:
        """A descriptor of a spare file now also named `path`; None when there is no
        spare or `path` exists (another lock file: open that one)."""
        with self._lock:
            if not self._free:
                return None
            spare = self._free.pop()
        try:
            os.link(spare, path)  # fails if path exists: never two names for one lock
        except OSError:
            with self._lock:
                self._free.append(spare)
            return None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spare)
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # `gitcache gc` removed it meanwhile: make one
            return None

    def keep(self, fd: int, path: Path) -> None:
        """Move the lock file `fd` locks (named `path`) here, before it is unlocked: a
        process waiting for it finds it no longer named `path` once it gets it, and
        takes the lock again on the path's new file (`_still_named`)."""
        if not _still_named(fd, path):
            return
        with self._lock:
            self._count += 1
            spare = self.directory / f"spare-{self._count}"
        try:
            os.rename(path, spare)
        except OSError:  # the directory went (the end of the run): it stays a lock file
            return
        with self._lock:
            self._free.append(spare)


@contextmanager
def signature_lock(
    state_dir: Path,
    signature: str,
    on_wait: Callable[[str], None],
    spares: LockSpares | None = None,
    unlocked: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[None]:
    """Hold the signature's lock (flock on `locks/<signature>.lock`) while the block runs.

    `gitcache gc` removes lock files no process holds (`remove_unheld_signature_locks`):
    a lock taken on a file that was removed meanwhile guards nothing, so it is taken
    again on the file the path names now. `spares`: where the lock file comes from
    when it does not exist, and goes when the lock is released (LockSpares).
    `unlocked`: held while waiting for another process (the engine lets go of its own
    lock there: that process may need ours to finish and let go of this one).
    """
    path = signature_lock_path(state_dir, signature)
    waited = False
    while True:
        found = None if spares is None else spares.open(path)
        try:
            fd = found if found is not None else os.open(path, _LOCK_FLAGS, 0o644)
        except FileNotFoundError:  # the first lock in this repository
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _check_not_held_above(path, "cannot run a step from its own command")
                if not waited:
                    on_wait(f"waiting for lock on {path} (another gitcache is running this step)")
                    waited = True
                with unlocked():
                    fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_named(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        try:
            if spares is not None:
                spares.keep(fd, path)
        finally:
            os.close(fd)  # releases the flock


_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC


def output_lock_paths(state_dir: Path, outputs: Iterable[str]) -> list[Path]:
    """The lock files of these declared outputs, in the one order every holder takes
    them (so two processes each waiting for a lock the other holds cannot happen)."""
    buckets = {blake3.blake3(p.encode()).digest()[0] % OUTPUT_BUCKETS for p in outputs}
    # No `.lock` suffix: to git and its users a `.lock` file is one left behind.
    return [state_dir / "locks" / f"outputs-{b:02x}" for b in sorted(buckets)]


@contextmanager
def outputs_lock(
    state_dir: Path,
    outputs: Sequence[str],
    on_wait: Callable[[str], None],
    unlocked: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[None]:
    """Hold the locks of a step's declared outputs while the block writes them (clears,
    runs the command and records it, or restores a record).

    A gitcache started by a step's command whose outputs share a lock with the step's
    (the same bucket) does not wait for its parent, which waits for it: it fails at once
    (LockHeld) when it would write one of those very outputs, and else goes on, under the
    lock its parent holds (no third process takes it meanwhile). A lock this thread
    holds already (a Python step calling another step from its function) is not taken
    again: waiting for it would wait for ourselves.
    """
    try:
        held_above = set(json.loads(os.environ.get(HELD_OUTPUTS_ENV, "[]")))
    except (ValueError, TypeError):
        held_above = set()
    fds: list[int] = []
    me = threading.get_ident()
    taken: list[Path] = []
    try:
        for path in output_lock_paths(state_dir, outputs):
            with _in_process:
                holders = _output_holders.get(path, set())
                if me in holders:
                    continue
                ours = bool(holders)
            fd = _open_lock_file(path)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if _held_above(path):
                    shared = sorted(held_above.intersection(outputs))
                    if shared:
                        _check_not_held_above(path, f"cannot write output {shared[0]}")
                    continue  # only the bucket is shared: the parent holds it for us
                if not ours:  # else another thread's item in the same bucket: no warning
                    on_wait(
                        f"waiting for lock on {path} (another gitcache is writing the "
                        f"outputs {', '.join(outputs[:3])}{', ...' if len(outputs) > 3 else ''})"
                    )
                with unlocked():
                    fcntl.flock(fd, fcntl.LOCK_EX)
            taken.append(path)
            with _in_process:
                _output_holders.setdefault(path, set()).add(me)
        yield
    finally:
        with _in_process:
            for path in taken:
                _output_holders[path].discard(me)
        for fd in fds:
            os.close(fd)  # releases its flock


# Output lock -> the threads of this process that hold it: one that holds it already
# does not wait for itself, and one that waits for another's is waiting for our own
# other job (`run -j N`), not for another gitcache.
_output_holders: dict[Path, set[int]] = {}
_in_process = threading.Lock()


def _still_named(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not removed meanwhile)."""
    held = os.fstat(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return held.st_nlink > 0 and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


_SIGNATURE_LOCK = re.compile(r"[0-9a-f]{64}\.lock")


def remove_unheld_signature_locks(state_dir: Path) -> int:
    """Remove the signature lock files that no process holds; how many went.

    One lock file per signature ever run would pile up. A file is unlinked only while
    this process holds its flock and the path still names it, so no holder loses its
    lock; a process that opened it earlier and waits for it finds it unlinked once it
    gets it and takes the lock again on the path's new file (`signature_lock`).
    """
    directory = state_dir / "locks"
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for name in names:
        if not _SIGNATURE_LOCK.fullmatch(name):
            continue
        path = directory / name
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # held: a run of that signature is under way
            if _still_named(fd, path):
                os.unlink(path)
                removed += 1
        finally:
            os.close(fd)
    return removed


@contextmanager
def writing_objects(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the objects lock shared: no `gitcache gc --prune` until the block ends.

    Hold it from before the first object a caller writes (or the first record it
    reads, to restore from) until the refs that keep those objects exist. Many
    holders at once are fine (several runs, threads of one run, nested holders).
    """
    with _flock(
        state_dir,
        fcntl.LOCK_SH,
        on_wait,
        "waiting for lock on {path} (gitcache gc --prune is running)",
        "",
    ):
        yield


@contextmanager
def dropping_records(state_dir: Path, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the objects lock exclusive: no gitcache process is between objects and refs,
    or relying on a record; hold it from choosing records to drop to pruning them."""
    with _flock(
        state_dir,
        fcntl.LOCK_EX,
        on_wait,
        "waiting for lock on {path} (another gitcache is writing or using records)",
        "cannot drop records while a step runs",
    ):
        yield


@contextmanager
def _flock(
    state_dir: Path, kind: int, on_wait: Callable[[str], None] | None, notice: str, nested: str
) -> Iterator[None]:
    """flock(2) the objects lock; `nested`: what fails when the caller's gitcache holds it
    ("" for a shared lock, which another shared holder never blocks)."""
    path = objects_lock_path(state_dir)
    # One open file description per holder: flock(2) locks belong to it, so threads
    # and nested holders each get their own and never release another's lock.
    fd = _open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            if nested:
                _check_not_held_above(path, nested)
            if on_wait is not None:
                on_wait(notice.format(path=path))
            fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)  # closing the last descriptor of the description releases the lock

"""SIGTERM and SIGHUP, which reach gitcache alone, stop the other processes it waits
for too: the workers of `gitcache run DIR/*.json -j N` and the git of a fetch."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.python.conftest import PyRepo, pyrepo  # noqa: F401 - the fixture

_STARTED: list[int] = []  # pids this test started, killed if a test leaves them


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    yield
    for pid in _STARTED:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    _STARTED.clear()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait(predicate: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


SLEEPY = """
import os, time
import gitcache

@gitcache.step
def nap(x: int) -> int:
    with open(f"worker-{x}.pid", "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(60)
    return x

if __name__ == "__main__":
    import sys
    for x in map(int, sys.argv[1:]):
        print(nap.task(x).save("tasks"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_task_workers_stop_with_gitcache(pyrepo: PyRepo, signum: int) -> None:  # noqa: F811
    pyrepo.write(".gitignore", "__pycache__/\n*.pid\ntasks/\n")
    pyrepo.write("naps.py", SLEEPY)
    pyrepo.commit("naps")
    pyrepo.run_file("naps.py", "1", "2")
    tasks = sorted(str(p.relative_to(pyrepo.root)) for p in (pyrepo.root / "tasks").glob("*.json"))
    proc = pyrepo.spawn("run", *tasks, "-j", "2")
    _STARTED.append(proc.pid)
    pid_files = [pyrepo.root / "worker-1.pid", pyrepo.root / "worker-2.pid"]
    _wait(lambda: all(p.exists() and p.read_text() for p in pid_files), "workers never ran")
    workers = [int(p.read_text()) for p in pid_files]
    _STARTED.extend(workers)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    name = signal.Signals(signum).name
    assert f"gitcache: error: stopped by {name}" in err
    _wait(lambda: not any(_alive(p) for p in workers), "a worker outlived gitcache", 10)
    assert not pyrepo.refs("refs/gitcache/sig/")


@pytest.fixture
def silent_remote() -> Iterator[str]:
    """A git:// address whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"git://127.0.0.1:{server.getsockname()[1]}/repo"
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.slow
def test_the_git_of_a_fetch_stops_with_gitcache(pyrepo: PyRepo, silent_remote: str) -> None:  # noqa: F811
    pyrepo.git("remote", "add", "origin", silent_remote)
    proc = pyrepo.spawn("fetch")
    _STARTED.append(proc.pid)
    git: list[int] = []
    _wait(lambda: git.extend(_children(proc.pid)) or git, "gitcache never started git")
    _STARTED.extend(git)
    time.sleep(0.3)  # git is waiting for the server now
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "gitcache: error: stopped by SIGTERM" in err
    _wait(lambda: not any(_alive(p) for p in git), "git outlived gitcache", 10)

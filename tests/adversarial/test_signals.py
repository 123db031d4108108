"""Signals to gitcache while a step's command runs, and processes killed outright.

SIGINT, SIGTERM and SIGHUP stop the command's whole process tree, write no record and
exit 130 / 143 / 129 with one error line; Ctrl-Z stops the command with gitcache.
kill -9 cannot be forwarded, but the scratch directory it leaves is removed by the
next run. Every command here writes the pids of its processes, so that the tests can
see that none is left running.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Repo, gitcache_env

# The shell and a background sleep (which ignores SIGINT: sh starts `&` jobs so, and
# only the escalation to SIGTERM stops it), then a foreground one.
SLOW = """\
[steps.{name}]
outputs = ["out/{name}.txt"]
run = "echo $$ > {name}.sh.pid; sleep 60 & echo $! > {name}.bg.pid; sleep 60; echo done > {{outputs}}"
"""
IGNORE = "out/\n*.pid\ngo\n"


@pytest.fixture(autouse=True)
def _no_process_left(make: Callable[..., Repo]) -> Iterator[None]:
    """Whatever a failing test leaves running goes: gitcache, then each command's group."""
    yield
    for proc in list(_SPAWNED):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _SPAWNED.clear()
    for root in list(_ROOTS):
        (root / "go").touch()
        for pid_file in root.glob("*.sh.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text())
                # Only a shell of this test's (its pid may belong to another by now).
                if Path(os.readlink(f"/proc/{pid}/cwd")) == root.resolve():
                    os.killpg(pid, signal.SIGKILL)
    _ROOTS.clear()


_SPAWNED: list[subprocess.Popen[str]] = []
_ROOTS: list[Path] = []


def _spawn(repo: Repo, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    proc = repo.spawn(*args, **kwargs)
    _SPAWNED.append(proc)
    _ROOTS.append(repo.root)
    return proc


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has stopped; its parent (init) just has not reaped it


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _wait_for(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return int(path.read_text())


def _pids(repo: Repo, *names: str) -> list[int]:
    return [_wait_for(repo.root / f"{n}.{kind}.pid") for n in names for kind in ("sh", "bg")]


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _scratch(repo: Repo) -> list[str]:
    tmp = repo.root / ".git" / "gitcache" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM"),
        (signal.SIGHUP, 129, "stopped by SIGHUP"),
        (signal.SIGINT, 130, "interrupted"),
    ],
)
def test_a_signal_stops_the_command_and_records_nothing(
    make: Callable[..., Repo], signum: int, code: int, said: str
) -> None:
    repo = make({"gitcache.toml": SLOW.format(name="slow"), ".gitignore": IGNORE})
    proc = _spawn(repo, "run")
    pids = _pids(repo, "slow")
    t0 = time.monotonic()
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    errors = [line for line in err.splitlines() if line.startswith("gitcache: error:")]
    assert len(errors) == 1 and said in errors[0], err
    assert "Traceback" not in err
    assert _gone(pids), "the step's command outlived gitcache"
    assert time.monotonic() - t0 < 15
    assert repo.refs() == {}
    assert not (repo.root / "out" / "slow.txt").exists()
    assert _scratch(repo) == []


def test_sigterm_stops_every_command_of_a_parallel_run(make: Callable[..., Repo]) -> None:
    toml = SLOW.format(name="a") + "\n" + SLOW.format(name="b")
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE})
    proc = _spawn(repo, "run", "-j", "2")
    pids = _pids(repo, "a", "b")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err
    assert _gone(pids)
    assert repo.refs() == {}
    assert _scratch(repo) == []


def test_ctrl_z_stops_the_command_and_fg_resumes_it(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.wait]\noutputs = ["out/w.txt"]\n'
        'run = "echo $$ > w.sh.pid; while [ ! -f go ]; do sleep 0.05; done; echo w > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE})
    # A group of its own under this process: never orphaned, so the kernel lets a
    # Ctrl-Z stop it whatever session and group the tests run in.
    proc = _spawn(repo, "run", process_group=0)
    shell = _wait_for(repo.root / "w.sh.pid")
    proc.send_signal(signal.SIGTSTP)
    deadline = time.monotonic() + 30
    while _state(shell) != "T" or _state(proc.pid) != "T":
        assert time.monotonic() < deadline, (_state(shell), _state(proc.pid))
        time.sleep(0.02)
    proc.send_signal(signal.SIGCONT)
    (repo.root / "go").touch()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert repo.read("out/w.txt") == "w\n"


HELD_CTRL_Z = """
import os, signal, subprocess, time
from gitcache.processes import Children, forwarding_signals

children = Children()
with forwarding_signals(children):
    with children.starting():
        proc = subprocess.Popen(["sleep", "30"], process_group=0)
        print(proc.pid, flush=True)
        os.kill(os.getpid(), signal.SIGTSTP)  # Ctrl-Z before gitcache knows the command
        children.add(proc)
    time.sleep(1)
    print("done", flush=True)
    proc.kill()
"""


def test_ctrl_z_while_a_command_starts_stops_that_command(tmp_path: Path) -> None:
    # The handler can run inside Popen, once the command runs but before gitcache has
    # noted it: the Ctrl-Z must still reach the command. A process group of its own,
    # under this process in the same session, is never orphaned: the kernel lets the
    # script stop itself as a terminal's Ctrl-Z would.
    import sys

    from tests.helpers import gitcache_env

    script = subprocess.Popen(
        [sys.executable, "-c", HELD_CTRL_Z],
        cwd=tmp_path,
        env=gitcache_env(),
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    try:
        assert script.stdout is not None
        command = int(script.stdout.readline())
        deadline = time.monotonic() + 20
        while _state(command) != "T" or _state(script.pid) != "T":
            assert time.monotonic() < deadline, (_state(command), _state(script.pid))
            time.sleep(0.02)
        os.kill(script.pid, signal.SIGCONT)  # `fg`: the script resumes, and the command
        assert script.stdout.readline() == "done\n"
        assert script.wait(timeout=30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, ValueError, NameError):
            os.killpg(command, signal.SIGKILL)


def test_nohup_keeps_running_after_a_hangup(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.wait]\noutputs = ["out/w.txt"]\n'
        'run = "echo $$ > w.sh.pid; while [ ! -f go ]; do sleep 0.05; done; echo w > {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE})
    proc = _spawn(repo, "run", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    _wait_for(repo.root / "w.sh.pid")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    (repo.root / "go").touch()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert len([r for r in repo.refs() if "/sig/" in r]) == 1


def test_the_next_run_removes_scratch_left_by_kill_9(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": SLOW.format(name="slow"), ".gitignore": IGNORE})
    proc = _spawn(repo, "run")
    pids = _pids(repo, "slow")
    proc.kill()  # nothing can be forwarded: the command's group lives on
    proc.communicate(timeout=30)
    os.killpg(pids[0], signal.SIGKILL)  # the shell leads its own process group
    assert _gone(pids)
    assert _scratch(repo) == [f"{proc.pid}-slow"]
    state = repo.root / ".git" / "gitcache" / "tmp"
    # Kept: a live process's directory, and one whose lock a process holds (an owner
    # in another pid namespace, whose pid means nothing here).
    (state / f"{os.getpid()}-live").mkdir()
    held = state / f"{_dead_pid()}-held"
    held.mkdir()
    with open(held / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        repo.write("gitcache.toml", SLOW.format(name="slow").replace("sleep 60", "true"))
        done = repo.process("run")
        assert done.returncode == 0, done.stderr
        assert _scratch(repo) == sorted([held.name, f"{os.getpid()}-live"])


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_next_run_removes_state_files_half_written_by_a_killed_process(
    make: Callable[..., Repo],
) -> None:
    repo = make(
        {"gitcache.toml": SLOW.format(name="s").replace("sleep 60", "true"), ".gitignore": IGNORE}
    )
    state = repo.root / ".git" / "gitcache"
    state.mkdir(parents=True, exist_ok=True)
    dead, live = _dead_pid(), os.getpid()
    names = {
        f".statcache-{dead}-x1": False,  # kill -9 between writing and renaming: goes
        f".record-index-{dead}-x2": False,
        f".latest-{dead}-x3": False,
        f".removed-{dead}-x4": False,
        f".statcache-{live}-x5": True,  # a live process is writing it: stays
        ".statcache-legacy": True,  # no pid (an older gitcache), and new: stays
        ".statcache-ancient": False,  # no pid, and hours old: goes
        "statcache-v1.json.keep": True,  # not a temporary file at all
    }
    for name in names:
        (state / name).write_text("{")
    old = time.time() - 7200
    os.utime(state / ".statcache-ancient", (old, old))
    result = repo.process("run")
    assert result.returncode == 0, result.stderr
    for name, kept in names.items():
        assert (state / name).exists() == kept, name


def test_a_signal_during_held_bookkeeping_is_raised_right_after_it() -> None:
    from gitcache.processes import signals_held

    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a Python handler would have run by now
            seen.append("the block ran to its end")
        seen.append("not reached: raised on leaving the block")
    assert seen == ["the block ran to its end"]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_sweep_keeps_the_records_of_the_items_that_finished(
    make: Callable[..., Repo], signum: int, code: int
) -> None:
    """Items' records wait to be written while the next commands run (RefBatch): the
    run stopped, every finished item's record is written whole, the stopped one's not."""
    values = ", ".join(str(i) for i in range(20))
    wait = "if [ {a} = 12 ]; then echo $$ > w.sh.pid; while [ ! -e go ]; do sleep 0.02; done; fi"
    toml = (
        f"[steps.s]\nmatrix = {{ a = [{values}] }}\noutputs = ['out/{{a}}.txt']\n"
        f"run = '{wait}; echo {{a}} > {{outputs}}'\n"
    )
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE})
    proc = _spawn(repo, "run")
    pids = [_wait_for(repo.root / "w.sh.pid")]
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert _gone(pids)
    kept = repo.refs("refs/gitcache/sig/")
    assert len(kept) == 12, err
    items = [json.loads(repo.git("show", f"{c}:record.json"))["item"]["a"] for c in kept.values()]
    assert sorted(items) == list(range(12))
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
    (repo.root / "go").touch()
    again = repo.run("run")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count(": ran") == 8


def test_helper_threads_leave_stop_signals_to_the_main_thread() -> None:
    """Hashing and chunk-writing threads block Ctrl-C, SIGTERM and SIGHUP, so the kernel
    gives those to the main thread, where `signals_held` can keep them out."""
    import threading

    from gitcache.processes import start_quiet

    masks: list[set[int]] = []
    threads = [
        threading.Thread(target=lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        for _ in range(2)
    ]
    start_quiet(*threads)
    for thread in threads:
        thread.join()
    assert len(masks) == 2
    for mask in masks:
        assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= mask
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # ours unchanged


# Runs gitcache as the child subreaper of its command's orphans, never reaping them: the
# command's processes that gitcache does not reap itself stay zombies, as under a PID 1
# that is slow to reap (a container's). Prints gitcache's exit status and how long it
# took to exit after SIGTERM.
_ZOMBIE_KEEPER = """\
import ctypes, json, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
proc = subprocess.Popen([sys.executable, "-m", "gitcache", "run"], stderr=subprocess.PIPE)
deadline = time.monotonic() + 30
while not os.path.exists("keeper.bg.pid") or not open("keeper.bg.pid").read().strip():
    assert time.monotonic() < deadline
    time.sleep(0.02)
time.sleep(0.2)
t0 = time.monotonic()
proc.send_signal(signal.SIGTERM)
_out, err = proc.communicate(timeout=30)
print(json.dumps({"code": proc.returncode, "seconds": time.monotonic() - t0,
                  "err": err.decode()}))
"""


def test_sigterm_does_not_wait_for_zombies_of_the_command(make: Callable[..., Repo]) -> None:
    """The command's orphaned processes are stopped, but nobody reaps them at once: the
    stop does not wait out each signal's grace for processes that already ended."""
    repo = make({"gitcache.toml": SLOW.format(name="keeper"), ".gitignore": IGNORE})
    _ROOTS.append(repo.root)
    done = subprocess.run(
        [sys.executable, "-c", _ZOMBIE_KEEPER],
        cwd=repo.root,
        env=gitcache_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["code"] == 143, report["err"]
    assert report["seconds"] < 1.0, report  # 4 s (two graces) when zombies count as alive
    assert repo.refs() == {}


# gitcache whose restore gets SIGTERM (or SIGHUP) while it writes a file of SIG_AT bytes
# or more: in the middle of a chunked file's temporary file, or of a file made in place.
SIGNALLED_MIDWAY = """\
import os, signal, sys
from gitcache import worktree

original = worktree.write_pieces

def signalled(fd, pieces):
    if sum(map(len, pieces)) >= int(os.environ["SIG_AT"]):
        os.write(fd, b"half")
        os.kill(os.getpid(), int(os.environ["SIG"]))
    return original(fd, pieces)

worktree.write_pieces = signalled
from gitcache.cli.main import main
main(sys.argv[1:], prog_name="gitcache")
"""


@pytest.mark.parametrize(
    ("signum", "sig_at"),
    [(signal.SIGTERM, 1 << 20), (signal.SIGHUP, 1 << 20), (signal.SIGTERM, 100)],
)
def test_a_signal_to_gitcache_restore_leaves_no_temporary_or_half_written_file(
    make: Callable[..., Repo], signum: int, sig_at: int
) -> None:
    """`gitcache restore` once died of SIGTERM's default action, leaving a chunked
    file's temporary file (and a mode-000 file made in place) for the next command."""
    toml = """\
        [steps.big]
        outputs = ["out"]
        run = "python3 -c \\"import os; os.makedirs('out'); open('out/big.bin', 'wb').write(os.urandom(20 << 20)); open('out/a.txt', 'w').write('s' * 200)\\""
        """
    repo = make({"gitcache.toml": toml, ".gitignore": IGNORE})
    assert repo.process("run").returncode == 0
    for name in ("a.txt", "big.bin"):  # a.txt first: made in place
        (repo.root / "out" / name).unlink()

    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_MIDWAY, "restore", "big"],
        cwd=repo.root,
        env={**gitcache_env(), "SIG": str(int(signum)), "SIG_AT": str(sig_at)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 128 + signum, done.stderr
    assert done.stderr.strip().endswith(f"stopped by {signal.Signals(signum).name}")
    assert "Traceback" not in done.stderr
    # Nothing half-written, no temporary file: only a.txt, whole, when big.bin was hit.
    left = sorted(os.listdir(repo.root / "out"))
    assert left == ([] if sig_at <= 200 else ["a.txt"])
    for name in left:
        assert (repo.root / "out" / name).read_text() == "s" * 200

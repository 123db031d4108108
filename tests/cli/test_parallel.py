"""`gitcache run -j N`: independent steps at once, make -j's failure rules."""

from __future__ import annotations

import fcntl
import itertools
import json
import signal
import time
from collections.abc import Callable

from tests.helpers import Repo


def _steps(**runs: str) -> str:
    return "".join(
        f'[steps.{name}]\noutputs = ["{name}.txt"]\nrun = "{run}"\n' for name, run in runs.items()
    )


def test_independent_steps_overlap(make: Callable[..., Repo]) -> None:
    stamp = "python3 -c 'import time; print(time.time())'"
    runs = {n: f"{stamp} > {n}.txt; sleep 0.4; {stamp} >> {n}.txt" for n in "abcd"}
    repo = make({"gitcache.toml": _steps(**runs)})
    result = repo.run("run", "-j", "4")
    assert result.exit_code == 0, result.stderr
    spans = [[float(x) for x in repo.read(f"{n}.txt").split()] for n in "abcd"]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # all four ran at once
    assert len([r for r in repo.refs() if r.startswith("refs/gitcache/sig/")]) == 4
    repo.git("fsck", "--strict")
    serial = make({"gitcache.toml": _steps(**runs)})
    assert serial.run("run", "-j", "1").exit_code == 0
    spans = sorted([float(x) for x in serial.read(f"{n}.txt").split()] for n in "abcd")
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one at a time


def test_output_lines_are_prefixed_by_step(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": _steps(
                a="printf 'one\\\\ntwo' > a.txt; echo A1; echo A2", b="echo B > b.txt"
            )
        }
    )
    result = repo.run("run", "-j", "2")
    assert result.exit_code == 0, result.stderr
    assert "[a] A1\n" in result.stdout and "[a] A2\n" in result.stdout
    single = make({"gitcache.toml": _steps(a="echo A1 > a.txt; echo A1")})
    assert single.run("run").stdout == "A1\n"  # no prefix with one job


def test_dependencies_wait_for_their_producer(chain: Repo) -> None:
    result = chain.run("run", "-j", "2")
    assert result.exit_code == 0, result.stderr
    assert chain.read("out/count.txt").strip() == "101"


def test_first_failure_stops_new_launches_and_lets_running_finish(
    make: Callable[..., Repo],
) -> None:
    repo = make(
        {
            "gitcache.toml": _steps(
                a="exit 4",
                b="sleep 0.5; echo b > b.txt",
                c="echo c > c.txt",
                d="echo d > d.txt",
            )
        }
    )
    result = repo.run("run", "-j", "2")
    assert result.exit_code == 1
    assert "step 'a' failed: command exited with status 4" in result.stderr
    assert "steps left pending: c, d" in result.stderr
    assert (repo.root / "b.txt").exists() and "refs/gitcache/step/b" in repo.refs()
    assert not (repo.root / "c.txt").exists()


def test_keep_going_runs_the_rest(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": _steps(a="exit 4", b="echo b > b.txt", c="echo c > c.txt")
            + '[steps.after_a]\ninputs = ["a.txt"]\noutputs = ["x.txt"]\nrun = "cp a.txt x.txt"\n'
        }
    )
    result = repo.run("run", "-j", "2", "-k")
    assert result.exit_code == 1
    assert (repo.root / "b.txt").exists() and (repo.root / "c.txt").exists()
    assert "steps left pending: after_a" in result.stderr


def test_parallel_run_as_a_process_records_everything(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": _steps(**{n: f"echo {n} > {n}.txt" for n in "abcdef"})})
    done = repo.process("run", "-j", "3")
    assert done.returncode == 0, done.stderr
    assert len([r for r in repo.refs() if r.startswith("refs/gitcache/step/")]) == 6
    again = repo.process("run", "-j", "3")
    assert again.stderr.count("up to date") >= 6
    repo.git("fsck", "--strict")


def test_ctrl_c_during_parallel_run_records_nothing(make: Callable[..., Repo]) -> None:
    repo = make(
        {"gitcache.toml": _steps(a="sleep 30; echo a > a.txt", b="sleep 30; echo b > b.txt")}
    )
    # SIGINT to gitcache alone (as the terminal sends it: each command runs in a process
    # group of its own): gitcache stops both commands and records nothing.
    t0 = time.monotonic()
    proc = repo.spawn("run", "-j", "2")
    deadline = time.monotonic() + 10
    while not list((repo.root / ".git" / "gitcache" / "tmp").glob("*-b")):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert time.monotonic() - t0 < 20
    assert repo.refs() == {}


def test_waiting_for_another_process_holds_up_no_other_step(
    make: Callable[..., Repo],
) -> None:
    # Another gitcache runs `a` (its lock held here); this run's thread for `a` waits
    # for it. It used to wait holding the engine's lock, so `b` could not record until
    # `a`'s lock was free: two `run -j 2` each holding a lock the other waits for
    # then waited for each other for ever.
    repo = make({"gitcache.toml": _steps(a="echo a > a.txt", b="echo b > b.txt")})
    status = json.loads(repo.run("status", "--json").stdout)
    signature = next(s["signature"] for s in status if s["step"] == "a")
    path = repo.root / ".git" / "gitcache" / "locks" / f"{signature}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = repo.spawn("run", "-j", "2")
        deadline = time.monotonic() + 20
        while "refs/gitcache/step/b" not in repo.refs():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "b waited for a's lock"
            time.sleep(0.05)
        assert "refs/gitcache/step/a" not in repo.refs()
    _out, err = proc.communicate(timeout=30)  # the lock released: a runs
    assert proc.returncode == 0, err
    assert "waiting for lock" in err
    assert "refs/gitcache/step/a" in repo.refs()

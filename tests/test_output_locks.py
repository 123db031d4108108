"""Two gitcache processes never write one declared output at once (locks.outputs_lock).

Two runs of a step with other parameters (or a restore while the step runs) used to
interleave their writes, and each recorded what the other wrote: the record of `n=1`
held `start 2`, a wrong hit for every later run of `n=1`.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from gitcache.locks import OUTPUT_BUCKETS, outputs_lock
from tests.helpers import Repo, wait_for

# The command says when it started, then waits for the test's go-ahead.
TOML = """\
[params]
n = 0

[steps.s]
outputs = ["out.txt"]
run = '''
echo start {n} > out.txt
touch started-{n}
while [ ! -e go-{n} ]; do sleep 0.02; done
echo {n} >> out.txt
'''
"""


@pytest.fixture
def repo(make: Callable[..., Repo]) -> Repo:
    return make({"gitcache.toml": TOML, ".gitignore": "out.txt\nstarted-*\ngo-*\n"})


def _recorded(repo: Repo) -> dict[int, str]:
    """n -> the out.txt of the record of that parameter value."""
    found: dict[int, str] = {}
    for name in repo.refs("refs/gitcache/sig/"):
        record = json.loads(repo.git("show", f"{name}:record.json"))
        found[record["components"]["params"]["n"]] = repo.git("show", f"{name}:outputs/out.txt")
    return found


def test_a_second_run_with_other_parameters_waits_and_each_records_its_own(repo: Repo) -> None:
    first = repo.spawn("run", "-p", "n=1")
    wait_for(repo.root / "started-1")
    second = repo.spawn("run", "-p", "n=2")
    time.sleep(1.0)
    # It waits for the first: it has neither removed the output nor started.
    assert second.poll() is None and not (repo.root / "started-2").exists()
    assert repo.read("out.txt") == "start 1\n"
    (repo.root / "go-1").touch()
    assert first.wait(60) == 0
    wait_for(repo.root / "started-2")
    (repo.root / "go-2").touch()
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "waiting for lock on" in err and "writing the outputs out.txt" in err
    assert _recorded(repo) == {1: "start 1\n1\n", 2: "start 2\n2\n"}


def test_a_restore_waits_for_the_run_writing_the_same_outputs(repo: Repo) -> None:
    (repo.root / "go-1").touch()
    assert repo.process("run", "-p", "n=1").returncode == 0
    (one,) = repo.refs("refs/gitcache/sig/").values()
    running = repo.spawn("run", "-p", "n=2")
    wait_for(repo.root / "started-2")
    restore = repo.spawn("restore", "--force", one[:12])
    time.sleep(1.0)
    assert restore.poll() is None and repo.read("out.txt") == "start 2\n"
    (repo.root / "go-2").touch()
    assert running.wait(60) == 0
    _out, err = restore.communicate(timeout=60)
    assert restore.returncode == 0, err
    assert _recorded(repo) == {1: "start 1\n1\n", 2: "start 2\n2\n"}
    assert repo.read("out.txt") == "start 1\n1\n"  # the restore came after, whole


def _same_bucket_as(path: str) -> str:
    """Another output path whose lock is the same file as `path`'s."""
    bucket = blake3.blake3(path.encode()).digest()[0] % OUTPUT_BUCKETS
    for i in range(100_000):
        other = f"other-{i}.txt"
        if blake3.blake3(other.encode()).digest()[0] % OUTPUT_BUCKETS == bucket:
            return other
    raise AssertionError("no path in the same bucket")


def test_remove_outputs_waits_for_a_writer_of_them_and_checks_again(repo: Repo) -> None:
    """`remove --outputs` deleting a file while a run writes it would leave that run to
    record what is left. It takes the outputs' locks (held here as a run holds them,
    from clearing its outputs to its record) and checks the outputs again under them."""
    (repo.root / "go-1").touch()
    assert repo.process("run", "-p", "n=1").returncode == 0
    with outputs_lock(repo.root / ".git" / "gitcache", ["out.txt"], lambda _: None):
        remove = repo.spawn("remove", "--outputs", "s", "-p", "n=1")
        time.sleep(1.0)
        assert remove.poll() is None  # waiting: out.txt is still there
        assert repo.read("out.txt") == "start 1\n1\n"
        (repo.root / "out.txt").write_text("start 1\n")  # a run rewriting it meanwhile
    _out, err = remove.communicate(timeout=60)
    assert remove.returncode == 2, err
    assert "waiting for lock on" in err and "out.txt differs from its record" in err
    assert repo.read("out.txt") == "start 1\n"


def test_a_step_run_from_its_own_command_fails_at_once_on_its_outputs(
    make: Callable[..., Repo],
) -> None:
    """The gitcache a command starts would wait for its parent, which waits for it: it
    fails at once when it would write the parent's outputs, and goes on when it only
    shares their lock file (another output in the same bucket)."""
    other = _same_bucket_as("out.txt")
    gitcache = f"{shlex.quote(sys.executable)} -m gitcache"
    toml = f"""\
[params]
n = 0

[steps.s]
outputs = ["out.txt"]
run = "echo {{n}} > out.txt; if [ {{n}} = 1 ]; then {gitcache} run -p n=2 s 2> nested.err; echo $? > nested.rc; {gitcache} run other 2> other.err; echo $? > other.rc; fi"

[steps.other]
outputs = ["{other}"]
run = "echo other > {other}"
"""
    repo = make({"gitcache.toml": toml, ".gitignore": "*.txt\n*.err\n*.rc\n"})
    done = repo.process("run", "-p", "n=1", "s", timeout=120)
    assert done.returncode == 0, done.stderr
    assert repo.read("nested.rc").strip() != "0"
    nested = repo.read("nested.err")
    assert "cannot write output out.txt" in nested and "started this command" in nested
    assert nested.startswith("gitcache: error: ") and "Traceback" not in nested
    assert repo.read("nested.rc").strip() == "1"  # LockHeld's exit code, as documented
    assert repo.read("other.rc").strip() == "0", repo.read("other.err")
    assert repo.read(other) == "other\n"


def test_another_thread_in_the_same_bucket_is_waited_for_without_a_warning(
    tmp_path: Path,
) -> None:
    """`run -j N`: two items whose outputs share a lock file wait for each other (a
    flock per open file), but that is not another gitcache, so nothing is said."""
    import threading

    from gitcache.locks import outputs_lock

    other = _same_bucket_as("out.txt")
    holding, release = threading.Event(), threading.Event()
    said: list[str] = []
    order: list[str] = []

    def first() -> None:
        with outputs_lock(tmp_path, ["out.txt"], said.append):
            holding.set()
            release.wait(30)
            order.append("first released")

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(30)
    threading.Timer(0.5, release.set).start()
    with outputs_lock(tmp_path, [other], said.append):
        order.append("second took it")
    thread.join(30)
    assert order == ["first released", "second took it"]
    assert said == []

"""Python steps' records through the CLI: log, show, diff, status, restore, remove, gc,
push, fetch, a remote look-up on a miss, and amend carry-over.

Nothing in those commands knows about Python steps: these tests prove that the
records are ordinary records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo
from tests.hookutil import PACKAGE_ROOT
from tests.python.conftest import PyRepo, pyrepo  # noqa: F401 - the fixture
from tests.remotes import bare, clone, closed_url, git_daemon

STEPS = """
import gitcache

@gitcache.step
def square(x: int) -> int:
    with open("calls.txt", "a") as handle:
        handle.write(f"{x}\\n")
    print("squaring", x)
    return x * x
"""


@pytest.fixture
def recorded(pyrepo: PyRepo) -> PyRepo:  # noqa: F811 - the imported fixture
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\n")
    pyrepo.write("sq.py", STEPS)
    pyrepo.commit("steps")
    pyrepo.python("import sq; sq.square(2); sq.square(3)")
    return pyrepo


def test_log_lists_python_records(recorded: PyRepo) -> None:
    done = recorded.run("log", "--json")
    assert done.exit_code == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["step"] for r in rows] == ["square", "square"]
    assert sorted(r["params"]["x"] for r in rows) == [2, 3]
    filtered = json.loads(recorded.run("log", "square", "--param", "x=3", "--json").stdout)
    assert len(filtered) == 1 and filtered[0]["params"] == {"x": 3}


def test_show_and_diff_python_records(recorded: PyRepo) -> None:
    shown = recorded.run("show", "square", "--json")
    assert shown.exit_code == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["components"]["kind"] == "python" and record["components"]["params"] == {"x": 3}
    assert recorded.run("show", "square", "--stdout").stdout == "squaring 3\n"
    rows = json.loads(recorded.run("log", "--json").stdout)
    diff = recorded.run("diff", rows[1]["record"][:12], rows[0]["record"][:12])
    assert diff.exit_code == 0, diff.stderr
    assert "param x changed (2 -> 3)" in diff.stdout


def test_remove_and_gc_drop_python_records(recorded: PyRepo) -> None:
    rows = json.loads(recorded.run("log", "--json").stdout)
    removed = recorded.run("remove", rows[1]["record"][:12])
    assert removed.exit_code == 0, removed.stderr
    assert len(json.loads(recorded.run("log", "--json").stdout)) == 1
    # gc --keep 0 --all drops the rest; the next call runs again.
    dropped = recorded.run("gc", "--keep", "0", "--all")
    assert dropped.exit_code == 0, dropped.stderr
    assert json.loads(recorded.run("log", "--json").stdout) == []
    recorded.python("import sq; sq.square(3)")
    assert recorded.read("calls.txt").split() == ["2", "3", "3"]


def test_push_and_fetch_share_python_records(
    recorded: PyRepo, make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin = bare(tmp_path / "origin.git")
    recorded.git("remote", "add", "origin", str(origin))
    recorded.git("push", "-q", "origin", "main")
    pushed = recorded.run("push")
    assert pushed.exit_code == 0, pushed.stderr
    other = PyRepo(clone(str(origin), tmp_path / "b").root)
    fetched = other.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert "2 new records" in fetched.stderr
    done = other.python("import sq; print(sq.square(3))")
    assert done.stdout == "9\n"
    assert not (other.root / "calls.txt").exists()  # loaded, not run


def test_record_commands_need_no_workflow_file(recorded: PyRepo) -> None:
    """A repository whose steps are all Python functions has no gitcache.toml."""
    recorded.git("rm", "-q", "gitcache.toml")
    recorded.commit("no workflow file")
    rows = json.loads(recorded.run("log", "--json").stdout)
    assert len(rows) == 2
    assert recorded.run("show", "square").exit_code == 0
    assert recorded.run("diff", rows[0]["record"], rows[1]["record"]).exit_code == 0
    assert recorded.run("gc", "--keep", "1", "-n").exit_code == 0
    assert recorded.run("remove", "square").exit_code == 0
    assert json.loads(recorded.run("log", "--json").stdout) == []
    # `run` of shell steps still needs the file, and says so.
    ran = recorded.run("run")
    assert ran.exit_code == 2
    assert ran.stderr.startswith("gitcache: error: no gitcache.toml in")


PLOT = """
import os
import gitcache

@gitcache.step(outputs=["figs/{name}.txt"])
def plot(name: str, x: int) -> int:
    with open("calls.txt", "a") as handle:
        handle.write(f"plot {name}\\n")
    os.makedirs("figs", exist_ok=True)
    with open(f"figs/{name}.txt", "w") as handle:
        handle.write(f"{name}={x}\\n")
    return 2 * x
"""


def test_status_lists_python_steps_by_name_with_their_latest_record(recorded: PyRepo) -> None:
    rows = json.loads(recorded.run("log", "--json").stdout)
    newest = max(rows, key=lambda r: r["started_at"])  # square(3): the last call
    done = recorded.run("status")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.splitlines() == [
        "square  Python step",
        f"          latest record {newest['record'][:12]}: square(x=3)",
        "          2 records (`gitcache log square`); whether a call is recorded: "
        "square.explain(...) in Python",
    ]
    named = json.loads(recorded.run("status", "square", "--json").stdout)
    assert [(s["step"], s["state"], s["record"]) for s in named] == [
        ("square", "python", newest["record"])
    ]
    # A name that is neither a workflow step nor a Python step with records: as before.
    unknown = recorded.run("status", "cube")
    assert unknown.exit_code == 2
    assert unknown.stderr == "gitcache: error: gitcache.toml: unknown step 'cube' (steps: none)\n"


def test_status_beside_shell_steps_and_without_a_workflow_file(recorded: PyRepo) -> None:
    recorded.write(
        "gitcache.toml", '[steps.hello]\noutputs = ["hello.txt"]\nrun = "echo hi > {outputs}"\n'
    )
    recorded.write(".gitignore", "__pycache__/\ncalls.txt\nhello.txt\n")
    recorded.commit("a shell step too")
    lines = recorded.run("status").stdout.splitlines()
    assert lines[0].split() == ["hello", "never", "run"]
    assert lines[2] == "square  Python step"
    assert recorded.run("status", "hello").stdout.splitlines()[0].split()[0] == "hello"
    recorded.git("rm", "-q", "gitcache.toml")
    recorded.commit("Python steps only")
    assert recorded.run("status").stdout.splitlines()[0] == "square  Python step"


def test_restore_writes_the_outputs_of_a_python_record(pyrepo: PyRepo) -> None:  # noqa: F811
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\nfigs/\n")
    pyrepo.write("pl.py", PLOT)
    pyrepo.commit("steps")
    pyrepo.python("import pl; pl.plot('a', 2)")
    record = pyrepo.refs()["refs/gitcache/step/plot"]
    (pyrepo.root / "figs" / "a.txt").unlink()
    done = pyrepo.run("restore", record[:12])
    assert done.exit_code == 0, done.stderr
    assert pyrepo.read("figs/a.txt") == "a=2\n"
    # A hand-edited output is not overwritten without --force.
    pyrepo.write("figs/a.txt", "mine\n")
    refused = pyrepo.run("restore", "plot")
    assert refused.exit_code == 2
    assert "restore would overwrite figs/a.txt" in refused.stderr
    assert pyrepo.read("figs/a.txt") == "mine\n"
    assert pyrepo.run("restore", "plot", "--force").exit_code == 0
    assert pyrepo.read("figs/a.txt") == "a=2\n"
    assert pyrepo.read("calls.txt").split() == ["plot", "a"]


def test_remote_lookup_fetches_a_python_record_from_another_clone(
    recorded: PyRepo, tmp_path: Path
) -> None:
    with git_daemon(tmp_path / "served") as daemon:
        _path, url = daemon.repo("origin.git")
        recorded.git("remote", "add", "origin", url)
        recorded.git("push", "-q", "origin", "main")
        assert recorded.run("push").exit_code == 0
        other = PyRepo(clone(url, tmp_path / "b").root)
        # Without a remote setting: a miss runs the function.
        assert other.python("import sq; print(sq.square(2))").stdout == "squaring 2\n4\n"
        assert other.read("calls.txt").split() == ["2"]
        # remote = "origin": a local miss asks the remote for that signature only.
        other.write("gitcache.toml", 'remote = "origin"\n')
        other.commit("share through origin")
        done = other.python("import sq; print(sq.square(3))")
        assert done.stdout == "9\n"
        assert other.read("calls.txt").split() == ["2"]  # 3 was fetched, not run
        sigs = [r for r in other.refs() if r.startswith("refs/gitcache/sig/")]
        assert len(sigs) == 2
        # A call nobody recorded still runs (and the remote is asked once).
        assert other.python("import sq; print(sq.square(4))").stdout == "squaring 4\n16\n"
        assert other.read("calls.txt").split() == ["2", "4"]


def test_task_files_with_remote_fetch_instead_of_running(recorded: PyRepo, tmp_path: Path) -> None:
    recorded.python("import sq; sq.square.task(2).save('tasks'); sq.square.task(5).save('tasks')")
    with git_daemon(tmp_path / "served") as daemon:
        _path, url = daemon.repo("origin.git")
        recorded.git("remote", "add", "origin", url)
        recorded.git("push", "-q", "origin", "main")
        assert recorded.run("push").exit_code == 0
        other = PyRepo(clone(url, tmp_path / "b").root)
        tasks = tmp_path / "tasks"
        (recorded.root / "tasks").rename(tasks)
        files = sorted(str(p) for p in tasks.glob("*.json"))
        done = other.process("run", *files, "--remote", "origin")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("fetched, skipped") == 1 and done.stderr.count(": ran") == 1
        assert other.read("calls.txt").split() == ["5"]


def test_amend_carries_python_records_over(
    recorded: PyRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(PACKAGE_ROOT))  # git runs the hooks
    assert recorded.run("hooks", "install").exit_code == 0
    old = recorded.head()
    records = {r["record"] for r in json.loads(recorded.run("log", "--json").stdout)}
    recorded.git("commit", "-q", "--amend", "-m", "steps, reworded")
    new = recorded.head()
    assert new != old
    carried = json.loads(recorded.run("log", "--commit", "HEAD", "--json").stdout)
    assert {r["record"] for r in carried} == records
    assert all(r["carried_over"] for r in carried)
    recorded.git("reflog", "expire", "--expire=now", "--all")
    recorded.git("gc", "-q", "--prune=now")
    recorded.git("fsck", "--strict", "--no-dangling")
    # The amended commit's calls are still hits: the signature holds no commit.
    assert recorded.python("import sq; print(sq.square(3))").stdout == "9\n"
    assert recorded.read("calls.txt").split() == ["2", "3"]
    shown = recorded.run("show", sorted(records)[0][:12])
    assert f"rewritten  as {new[:12]}" in shown.stdout


def test_an_unreachable_remote_is_said_once_and_the_call_runs(recorded: PyRepo) -> None:
    recorded.write("gitcache.toml", f'remote = "{closed_url()}"\n')
    recorded.commit("a remote nobody serves")
    done = recorded.python(
        "import warnings, sq; warnings.simplefilter('always'); print(sq.square(4), sq.square(5))"
    )
    assert done.stdout.splitlines()[-1] == "16 25"
    assert done.stderr.count("going on without the remote") == 1
    assert recorded.read("calls.txt").split() == ["2", "3", "4", "5"]

"""Python steps' records through the CLI: log, show, diff, remove, gc, push, fetch.

Nothing in those commands knows about Python steps: these tests prove that the
records are ordinary records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo
from tests.python.conftest import PyRepo, pyrepo  # noqa: F401 - the fixture
from tests.remotes import bare, clone

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

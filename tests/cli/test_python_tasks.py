"""`gitcache run DIR/*.json -j N`: task files in worker processes."""

from __future__ import annotations

import json

import pytest

from tests.python.conftest import PyRepo, pyrepo  # noqa: F401 - the fixture

SCRIPT = """
import gitcache

@gitcache.step
def cube(x: int) -> int:
    with open("calls.txt", "a") as handle:
        handle.write(f"{x}\\n")
    if x < 0:
        raise ValueError("negative")
    return x ** 3

if __name__ == "__main__":
    import sys
    for x in map(int, sys.argv[1:]):
        print(cube.task(x).save("tasks"))
"""


@pytest.fixture
def saved(pyrepo: PyRepo) -> PyRepo:  # noqa: F811 - the imported fixture
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\ntasks/\n")
    pyrepo.write("cubes.py", SCRIPT)
    pyrepo.commit("cubes")
    pyrepo.run_file("cubes.py", "1", "2", "3", "4")  # saved from a script (__main__)
    return pyrepo


def calls(repo: PyRepo) -> list[str]:
    path = repo.root / "calls.txt"
    return sorted(path.read_text().split()) if path.exists() else []


@pytest.mark.slow
def test_task_files_run_in_workers_and_recorded_ones_are_skipped(saved: PyRepo) -> None:
    tasks = sorted(str(p.relative_to(saved.root)) for p in (saved.root / "tasks").glob("*.json"))
    assert len(tasks) == 4
    saved.python("import cubes; cubes.cube(1)")  # one is recorded already
    done = saved.process("run", *tasks, "-j", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(": ran") == 3 and done.stderr.count("recorded, skipped") == 1
    assert calls(saved) == ["1", "2", "3", "4"]
    again = saved.process("run", *tasks, "-j", "2")
    assert again.returncode == 0 and again.stderr.count("recorded, skipped") == 4
    assert len(saved.refs("refs/gitcache/sig/")) == 4
    # The records answer calls from the script's own process too.
    assert saved.python("import cubes; print(cubes.cube(3))").stdout == "27\n"
    assert calls(saved) == ["1", "2", "3", "4"]


def test_a_task_whose_code_changed_runs_with_a_warning(saved: PyRepo) -> None:
    task = sorted((saved.root / "tasks").glob("*.json"))[0]
    saved.write("cubes.py", saved.read("cubes.py").replace("x ** 3", "x * x * x"))
    done = saved.process("run", str(task.relative_to(saved.root)))
    assert done.returncode == 0, done.stderr
    assert "the code of step cube changed since the task was saved" in done.stderr


def test_a_failing_task_fails_the_run_and_the_others_go_on(saved: PyRepo) -> None:
    saved.run_file("cubes.py", "-1")
    tasks = sorted(str(p.relative_to(saved.root)) for p in (saved.root / "tasks").glob("*.json"))
    done = saved.process("run", *tasks)
    assert done.returncode == 1
    assert "failed: ValueError: negative" in done.stderr
    assert done.stderr.count(": ran") == 4


def test_task_files_and_steps_cannot_be_mixed(saved: PyRepo) -> None:
    done = saved.process("run", "tasks/x.json", "build")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("gitcache: error: cannot mix task files and step names: build")
    )


def test_a_file_that_is_not_a_task_is_an_error_naming_it(saved: PyRepo) -> None:
    saved.write("tasks/bad.json", json.dumps({"hello": 1}))
    done = saved.process("run", "tasks/bad.json")
    assert done.returncode == 1
    assert "bad.json: not a gitcache task file" in done.stderr

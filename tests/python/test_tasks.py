"""Tasks, composition by signature, explain, and gitcache.records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gitcache
from gitcache.errors import RecordNotFound
from tests.python.conftest import PyRepo

PIPELINE = """
import numpy as np

import gitcache

FACTOR = 2


def log(name: str) -> None:
    with open("calls.txt", "a") as handle:
        handle.write(name + "\\n")


def helper(x: float) -> float:
    return x * FACTOR


@gitcache.step
def load(n: int) -> list[float]:
    log("load")
    return [float(i) for i in range(n)]


@gitcache.step
def total(values: list[float], offset: float = 0.0) -> float:
    log("total")
    return helper(sum(values)) + offset


@gitcache.step
def weigh(data: gitcache.File, weights: np.ndarray) -> float:
    log("weigh")
    return float(len(data.read_text()) * weights.sum())
"""


def calls(pyrepo: PyRepo) -> list[str]:
    path = pyrepo.root / "calls.txt"
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def steps(pyrepo: PyRepo):  # type: ignore[no-untyped-def]
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\ntasks/\n")
    pyrepo.write("data.txt", "abc\n")
    module = pyrepo.module("pipeline.py", PIPELINE)
    pyrepo.commit("pipeline")
    return module


def test_a_task_is_lazy_and_its_signature_is_the_calls(pyrepo: PyRepo, steps) -> None:
    task = steps.load.task(4)
    assert calls(pyrepo) == []
    signature = task.signature
    assert len(signature) == 64 and not task.is_recorded()
    assert task.run() == [0.0, 1.0, 2.0, 3.0]
    assert task.is_recorded()
    assert pyrepo.refs()["refs/gitcache/sig/" + signature[:2] + "/" + signature]
    assert steps.load(4) == [0.0, 1.0, 2.0, 3.0]
    assert calls(pyrepo) == ["load"]


def test_a_task_as_an_argument_counts_by_its_signature(pyrepo: PyRepo, steps) -> None:
    assert steps.total(steps.load.task(3), offset=1.0) == 7.0
    assert calls(pyrepo) == ["load", "total"]
    # A new process: the downstream record exists, so neither step runs, and the
    # upstream is not even loaded.
    done = pyrepo.python(
        "import pipeline; print(pipeline.total(pipeline.load.task(3), offset=1.0))"
    )
    assert done.stdout == "7.0\n"
    assert calls(pyrepo) == ["load", "total"]
    # Even with the upstream's record gone, the downstream record answers.
    upstream = steps.load.task(3).signature
    pyrepo.git("update-ref", "-d", f"refs/gitcache/sig/{upstream[:2]}/{upstream}")
    done = pyrepo.python(
        "import pipeline; print(pipeline.total(pipeline.load.task(3), offset=1.0))"
    )
    assert done.stdout == "7.0\n"
    assert calls(pyrepo) == ["load", "total"]
    # Another upstream argument: another signature downstream.
    assert steps.total(steps.load.task(4), offset=1.0) == 13.0
    assert calls(pyrepo) == ["load", "total", "load", "total"]


def test_task_files_are_self_contained_and_recreate_the_call(pyrepo: PyRepo, steps) -> None:
    weights = np.array([0.5, 1.5])
    path = steps.weigh.task(gitcache.File("data.txt"), weights).save(pyrepo.root / "tasks")
    document = json.loads(path.read_text())
    assert document["gitcache_task"] == 1 and document["step"] == "weigh"
    assert document["arguments"]["data"] == {"$file": "data.txt"}
    assert "$npy" in document["arguments"]["weights"]
    from gitcache.python.tasks import read_task_file

    task, _ = read_task_file(path)
    assert task.signature == document["signature"]
    assert task.run() == 8.0
    chained = steps.total.task(steps.load.task(2)).save(pyrepo.root / "tasks")
    again, _ = read_task_file(chained)
    assert again.run() == 2.0


def test_explain_names_what_changed(
    pyrepo: PyRepo, steps, capsys: pytest.CaptureFixture[str]
) -> None:
    assert steps.total.explain([1.0]) == ["total: no record of this step yet: it would run"]
    steps.total([1.0, 2.0], offset=0.5)
    hit = steps.total.explain([1.0, 2.0], offset=0.5)
    assert "a hit" in hit[0]
    lines = steps.total.explain([1.0, 2.0], offset=0.75)
    assert lines[1:] == ["  argument offset changed (0.5 -> 0.75)"]
    assert "argument offset changed (0.5 -> 0.75)" in capsys.readouterr().out
    steps.FACTOR = 3  # a notebook rebinding a constant
    lines = steps.total.explain([1.0, 2.0], offset=0.5)
    assert lines[1:] == ["  code of pipeline.py:FACTOR changed"]
    steps.weigh(gitcache.File("data.txt"), np.ones(2))
    pyrepo.write("data.txt", "abcd\n")
    lines = steps.weigh.explain(gitcache.File("data.txt"), np.ones(2))
    assert len(lines) == 2 and lines[1].startswith("  argument data changed (file content ")


def test_records_lists_filters_loads_and_recreates(pyrepo: PyRepo, steps) -> None:
    for n in (1, 2, 3):
        steps.load(n)
    found = gitcache.records(steps.load)
    assert len(found) == 3
    assert found.latest().params == {"n": 3}  # newest first
    assert [r.params["n"] for r in gitcache.records("load", params={"n": 2})] == [2]
    assert gitcache.records(steps.load, since="1h").latest().load() == [0.0, 1.0, 2.0]
    task = gitcache.records(steps.load, params={"n": 2}).latest().task()
    assert task.run() == [0.0, 1.0]
    assert calls(pyrepo) == ["load"] * 3
    frame = found.df()
    assert sorted(frame["n"]) == [1, 2, 3]
    with pytest.raises(RecordNotFound):
        gitcache.records(steps.total).latest()


def test_records_reads_no_record_object_when_the_index_knows_them(pyrepo: PyRepo, steps) -> None:
    for n in range(5):
        steps.load(n)
    from gitcache.python.session import forget_sessions, session_for

    forget_sessions()  # a new process: only the index on disk
    store = session_for(Path.cwd()).store
    read: list[str] = []
    original = store._summarize
    store._summarize = lambda commit: read.append(commit) or original(commit)  # type: ignore[method-assign]
    assert len(gitcache.records(steps.load)) == 5
    assert read == []


def test_explain_and_status_name_the_same_latest_record(pyrepo: PyRepo, steps) -> None:
    steps.total([1.0], offset=0.5)
    steps.total([2.0], offset=0.5)
    latest = pyrepo.refs()["refs/gitcache/step/total"]
    hit = steps.total.explain([2.0], offset=0.5)
    assert hit == [f"total: recorded (record {latest[:12]}): a hit"]
    lines = steps.total.explain([3.0], offset=0.5)
    assert lines[0] == f"total: would run; since its latest record {latest[:12]}:"
    status = pyrepo.run("status", "total").stdout.splitlines()
    assert status[1].split()[:3] == ["latest", "record", latest[:12] + ":"]
    # A hit (in a new process: this one answers from memory) makes its record the latest.
    pyrepo.python("import pipeline; pipeline.total([1.0], offset=0.5)")
    first = pyrepo.refs()["refs/gitcache/step/total"]
    assert first != latest
    assert steps.total.explain([3.0], offset=0.5)[0].endswith(f"record {first[:12]}:")
    assert pyrepo.run("status", "total").stdout.splitlines()[1].split()[2] == first[:12] + ":"

"""A directory output is exactly its record: restored so, seen so by status, assert and
the steps that read it; an empty directory is an output too; symlinks stay links."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.helpers import Repo

TOML = """\
[params]
n = 2

[steps.gen]
outputs = ["out"]
run = "echo gen >> runs.log && mkdir -p out && for i in $(seq {n}); do echo $i > out/$i; done"

[steps.count]
inputs = ["out"]
outputs = ["count.txt"]
run = "echo count >> runs.log && ls out | wc -l | tr -d ' ' > count.txt"
"""


def runs(repo: Repo) -> list[str]:
    path = repo.root / "runs.log"
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def repo(make: Callable[..., Repo]) -> Repo:
    repo = make({"gitcache.toml": TOML, ".gitignore": "out/\ncount.txt\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    assert repo.read("count.txt") == "2\n"
    return repo


def recorded(repo: Repo, step: str) -> list[str]:
    shown = json.loads(repo.run("show", step, "--json").stdout)
    return [o["path"] for o in shown["outputs"]]


def test_back_to_fewer_files_removes_the_extra_ones_and_says_so(repo: Repo) -> None:
    assert repo.run("run", "-p", "n=4").exit_code == 0
    assert repo.read("count.txt") == "4\n"
    back = repo.run("run")
    assert back.exit_code == 0, back.stderr
    assert sorted(os.listdir(repo.root / "out")) == ["1", "2"]
    assert repo.read("count.txt") == "2\n"  # the downstream step sees two files
    assert "gen: restored from git" in back.stderr and "removed out/3, out/4" in back.stderr
    assert runs(repo) == ["gen", "count", "gen", "count"]  # nothing ran again


def test_a_fresh_run_records_only_what_it_made(repo: Repo) -> None:
    assert repo.run("run", "-p", "n=4").exit_code == 0
    assert repo.run("run", "-p", "n=3").exit_code == 0  # a new signature: runs
    assert recorded(repo, "gen") == ["out/1", "out/2", "out/3"]
    assert repo.read("count.txt") == "3\n"


def test_an_extra_file_is_seen_by_status_and_assert(repo: Repo) -> None:
    (repo.root / "out" / "3").write_text("3\n")
    blob = repo.blob("out/3")
    status = repo.run("status", "gen")
    assert "restorable from cache" in status.stdout
    assert "output out/3 not in the record" in status.stdout
    checked = repo.run("run", "-s", "assert")
    assert checked.exit_code == 3
    assert f"Signature mismatch: step gen: out/3: recorded missing, worktree {blob}" in (
        checked.stderr
    )


def test_an_extra_file_no_record_holds_makes_run_refuse(repo: Repo) -> None:
    (repo.root / "out" / "mine").write_text("unrecorded work\n")
    result = repo.run("run")
    assert result.exit_code == 2
    assert (
        "gitcache: error: restore would remove out/mine, which is in no record of step 'gen' "
        "(`gitcache restore --force gen` discards it, `gitcache run -s build gen` records it, "
        "`gitcache run -s force gen` runs the step again)"
    ) in result.stderr
    assert repo.read("out/mine") == "unrecorded work\n"
    refused = repo.run("restore", "gen")
    assert refused.exit_code == 2 and "restore would remove out/mine" in refused.stderr
    forced = repo.run("restore", "gen", "--force")
    assert forced.exit_code == 0 and "removed out/mine" in forced.stdout
    assert sorted(os.listdir(repo.root / "out")) == ["1", "2"]


def test_recording_an_extra_file_changes_what_downstream_steps_see(repo: Repo) -> None:
    (repo.root / "out" / "mine").write_text("kept\n")
    assert repo.run("run", "-s", "build", "gen").exit_code == 0
    assert recorded(repo, "gen") == ["out/1", "out/2", "out/mine"]
    result = repo.run("run")
    assert result.exit_code == 0
    assert runs(repo) == ["gen", "count", "count"]  # count's inputs changed: it ran
    assert repo.read("count.txt") == "3\n"


def test_removing_extra_files_removes_the_directories_they_leave_empty(repo: Repo) -> None:
    deep = repo.root / "out" / "sub" / "deep"
    deep.mkdir(parents=True)
    (deep / "x").write_text("x\n")
    forced = repo.run("restore", "gen", "--force")
    assert forced.exit_code == 0 and "removed out/sub/deep/x" in forced.stdout
    assert sorted(os.listdir(repo.root / "out")) == ["1", "2"]


def test_an_empty_directory_is_an_output(make: Callable[..., Repo]) -> None:
    toml = '[steps.mk]\noutputs = ["out"]\nrun = "echo run >> runs.log && mkdir -p out"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\nruns.log\n"})
    first = repo.run("run")
    assert first.exit_code == 0, first.stderr
    assert recorded(repo, "mk") == []
    assert repo.run("run", "-s", "assert").exit_code == 0
    os.rmdir(repo.root / "out")
    checked = repo.run("run", "-s", "assert")
    assert checked.exit_code == 3
    assert "Signature mismatch: step mk: out: recorded an empty directory, worktree missing" in (
        checked.stderr
    )
    again = repo.run("run")
    assert again.exit_code == 0 and "restored from git" in again.stderr
    assert (repo.root / "out").is_dir() and not os.listdir(repo.root / "out")
    assert repo.read("runs.log") == "run\n"
    (repo.root / "out" / "x").write_text("x\n")
    status = repo.run("status")
    assert "output out/x not in the record" in status.stdout


def test_a_symlink_in_a_directory_output_is_recorded_and_restored_as_a_link(
    make: Callable[..., Repo],
) -> None:
    toml = (
        '[steps.mk]\noutputs = ["out"]\n'
        'run = "mkdir -p out && ln -s ../data out/d && ln -s d/f out/f && echo x > out/x"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n", "data/f": "data\n"})
    assert repo.run("run").exit_code == 0
    assert recorded(repo, "mk") == ["out/d", "out/f", "out/x"]
    shown = json.loads(repo.run("show", "mk", "--json").stdout)
    assert {o["path"]: o["mode"] for o in shown["outputs"]}["out/d"] == 0o120000
    for name in ("d", "f", "x"):
        os.unlink(repo.root / "out" / name)
    assert repo.run("run").exit_code == 0
    assert os.readlink(repo.root / "out/d") == "../data"
    assert repo.read("out/f") == "data\n"


def test_restoring_many_files_says_so_in_a_short_line(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.many]\noutputs = ["out"]\n'
        'run = "mkdir -p out && for i in $(seq 1000 1499); do echo $i > out/$i; done"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    shutil.rmtree(repo.root / "out")
    status = repo.run("status")
    assert len(status.stdout.splitlines()) == 1 + 8 + 1
    assert status.stdout.splitlines()[-1].strip() == (
        "… and 492 more (`gitcache status --json` lists all)"
    )
    result = repo.run("run")
    assert result.exit_code == 0
    (line,) = [ln for ln in result.stderr.splitlines() if "many: restored from git" in ln]
    assert line.endswith("(500 files: out/1000, out/1001, out/1002, …)") and len(line) < 120
    shutil.rmtree(repo.root / "out")
    restored = repo.run("restore", "many")
    assert restored.stdout == "restored 500 files: out/1000, out/1001, out/1002, …\n"


def test_an_output_file_a_record_cannot_hold_fails_the_step_in_one_line(
    make: Callable[..., Repo],
) -> None:
    toml = '[steps.s]\noutputs = ["out"]\nrun = "mkdir -p out && touch \'out/a\\\\b\'"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n"})
    result = repo.run("run")
    assert result.exit_code == 1
    name = "out/a" + "\\" + "b"
    assert os.path.exists(repo.root / name)
    assert result.stderr.splitlines()[-1] == (
        f"gitcache: error: step 's' failed: cannot record output {name!r}: a record may not "
        "hold this path (no backslash, NUL, empty, '.', '..' or '.git' component)"
    )
    assert not [r for r in repo.refs() if r.startswith("refs/gitcache/sig/")]


SHAPES = """\
[params]
shape = "file"

[steps.s]
outputs = ["out"]
run = "mkdir -p out && if [ {shape} = file ]; then echo f > out/x; else mkdir out/x && echo d > out/x/a; fi"
"""


def test_a_file_restored_where_a_directory_of_its_step_is(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": SHAPES, ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("run", "-p", "shape=dir").exit_code == 0
    assert (repo.root / "out" / "x" / "a").is_file()
    result = repo.run("run")  # out/x is a directory its record holds: it goes
    assert result.exit_code == 0, result.stderr
    assert "restored" in result.stderr
    assert repo.read("out/x") == "f\n"


def test_a_file_never_replaces_a_directory_holding_more(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": SHAPES, ".gitignore": "out/\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("run", "-p", "shape=dir").exit_code == 0
    repo.git("init", "-q", "out/x/nested")  # a repository no walk of the output lists
    result = repo.run("run")
    assert result.exit_code == 2
    assert (
        "gitcache: error: cannot restore file out/x: a directory is there, holding "
        "out/x/nested/.git (move the directory away" in result.stderr
    )
    assert (repo.root / "out" / "x" / "a").is_file() and (repo.root / "out/x/nested/.git").is_dir()


def test_a_step_whose_output_holds_a_repository_fails_and_removes_nothing(repo: Repo) -> None:
    (repo.root / "out" / "clone" / ".git").mkdir(parents=True)
    (repo.root / "out" / "clone" / "notes.txt").write_text("mine\n")
    result = repo.run("run", "-s", "force", "gen")
    assert result.exit_code == 1
    assert result.stderr.count("gitcache: error:") == 1
    assert "refusing to remove output out before the step runs" in result.stderr
    assert "out/clone/.git" in result.stderr and "Traceback" not in result.stderr
    assert (repo.root / "out" / "clone" / "notes.txt").read_text() == "mine\n"


def test_a_step_that_fails_while_storing_leaves_no_objects_for_later_records(
    make: Callable[..., Repo],
) -> None:
    # 100 files wait in a pack being written when the last one cannot be recorded: they
    # are dropped, not published by the next step's record (in the same process).
    toml = (
        '[steps.bad]\noutputs = ["out"]\n'
        'run = "mkdir -p out && for i in $(seq 100 199); do echo bad $i > out/f$i; done '
        "&& touch 'out/z\\\\b'\"\n"
        '[steps.good]\noutputs = ["ok.txt"]\nrun = "echo ok > ok.txt"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\nok.txt\n"})
    result = repo.run("run", "-k", "bad", "good")
    assert result.exit_code == 1
    assert "cannot record output" in result.stderr
    assert repo.read("ok.txt") == "ok\n"
    blob = repo.git("hash-object", "out/f150").strip()
    present = subprocess.run(["git", "cat-file", "-e", blob], cwd=repo.root, check=False)
    assert present.returncode != 0
    assert not list((repo.root / ".git" / "objects" / "pack").glob("tmp_*"))

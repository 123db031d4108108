"""Inputs follow symlinks, as make and DVC do: a linked file counts by its content, a
linked directory is walked (link cycles are not), a link to nothing is a missing input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Repo

TOML = """\
[steps.s]
inputs = ["{input}"]
outputs = ["out.txt"]
run = "echo ran >> runs.log && cat {cat} > out.txt"
"""


def runs(repo: Repo) -> int:
    path = repo.root / "runs.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def step(make: Callable[..., Repo], input: str, cat: str) -> Repo:
    toml = TOML.format(input=input, cat=cat)
    return make({"gitcache.toml": toml, ".gitignore": "out.txt\nruns.log\n"})


def inputs(repo: Repo) -> dict[str, str]:
    shown = json.loads(repo.run("show", "s", "--json").stdout)
    return dict(shown["components"]["inputs"])


def test_a_linked_file_outside_the_repository_counts_by_its_content(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    outside = tmp_path / "shared.csv"
    outside.write_text("1\n")
    repo = step(make, "data.csv", "data.csv")
    (repo.root / "data.csv").symlink_to(outside)
    assert repo.run("run").exit_code == 0 and runs(repo) == 1
    assert inputs(repo) == {"data.csv": repo.blob(str(outside))}
    outside.write_text("2\n")  # the link text is the same; the content is not
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    assert repo.read("out.txt") == "2\n"
    assert repo.run("run").exit_code == 0 and runs(repo) == 2


def test_a_linked_directory_inside_a_directory_input_is_walked(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    outside = tmp_path / "ext"
    outside.mkdir()
    (outside / "b.txt").write_text("b\n")
    repo = step(make, "data", "data/*.txt data/ext/*.txt")
    repo.write("data/a.txt", "a\n")
    (repo.root / "data" / "ext").symlink_to(outside)
    assert repo.run("run").exit_code == 0 and runs(repo) == 1
    assert sorted(inputs(repo)) == ["data/a.txt", "data/ext/b.txt"]
    (outside / "b.txt").write_text("changed\n")
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    assert repo.read("out.txt") == "a\nchanged\n"


def test_a_linked_directory_input_is_walked(make: Callable[..., Repo], tmp_path: Path) -> None:
    outside = tmp_path / "ext"
    outside.mkdir()
    (outside / "b.txt").write_text("b\n")
    repo = step(make, "data", "data/b.txt")
    (repo.root / "data").symlink_to(outside)
    assert repo.run("run").exit_code == 0 and runs(repo) == 1
    assert list(inputs(repo)) == ["data/b.txt"]
    (outside / "b.txt").write_text("c\n")
    assert repo.run("run").exit_code == 0 and runs(repo) == 2


def test_a_link_cycle_is_walked_once(make: Callable[..., Repo]) -> None:
    repo = step(make, "data", "data/a.txt")
    repo.write("data/a.txt", "a\n")
    (repo.root / "data" / "loop").symlink_to(".")
    (repo.root / "data" / "sub").mkdir()
    (repo.root / "data" / "sub" / "up").symlink_to("..")
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert list(inputs(repo)) == ["data/a.txt"]


def test_a_dangling_input_link_is_a_missing_input(make: Callable[..., Repo]) -> None:
    repo = step(make, "data.csv", "data.csv")
    (repo.root / "data.csv").symlink_to("gone.csv")
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "gitcache: error: gitcache.toml: step 's': input 'data.csv' is a symlink to "
        "'gone.csv', which does not exist"
    )


def test_a_dangling_link_inside_a_directory_input_fails_the_step(
    make: Callable[..., Repo],
) -> None:
    repo = step(make, "data", "data/a.txt")
    repo.write("data/a.txt", "a\n")
    (repo.root / "data" / "b.txt").symlink_to("nowhere.txt")
    result = repo.run("run")
    assert result.exit_code == 1
    assert "step 's' failed: input data/b.txt -> nowhere.txt does not exist" in result.stderr
    status = repo.run("status")
    assert "input data/b.txt -> nowhere.txt does not exist" in status.stdout


def test_an_output_read_through_a_link_by_a_later_step(make: Callable[..., Repo]) -> None:
    """An upstream output that is a symlink: the downstream signature counts its target."""
    toml = """\
[params]
v = 1

[steps.gen]
outputs = ["out"]
run = "mkdir -p out && echo {v} > out/real.txt && ln -s real.txt out/link.txt"

[steps.use]
inputs = ["out/link.txt"]
outputs = ["use.txt"]
run = "echo ran >> runs.log && cat out/link.txt > use.txt"
"""
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\nuse.txt\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    first = inputs_of(repo, "use")
    assert first == {"out/link.txt": repo.blob("out/real.txt")}
    assert repo.run("run", "-p", "v=2").exit_code == 0 and runs(repo) == 2
    # Dry run from v=1's records (the overlay): the link resolves to the recorded target.
    dry = repo.run("run", "-n")
    assert "use: would restore from git" in dry.stderr, dry.stderr
    shutil.rmtree(repo.root / "out")  # now the link is only in gen's record
    assert "use: would restore from git" in repo.run("run", "-n").stderr
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    assert repo.read("use.txt") == "1\n"


def inputs_of(repo: Repo, name: str) -> dict[str, str]:
    shown = json.loads(repo.run("show", name, "--json").stdout)
    return dict(shown["components"]["inputs"])


def test_a_link_cycle_under_a_recursive_glob_ends(make: Callable[..., Repo]) -> None:
    repo = step(make, "data/**/*.txt", "data/a.txt")
    repo.write("data/a.txt", "a\n")
    repo.write("data/sub/b.txt", "b\n")
    (repo.root / "data" / "sub" / "loop").symlink_to("..")  # the standard glob never ends
    result = repo.process("run", timeout=30)
    assert result.returncode == 0, result.stderr
    assert list(inputs(repo)) == ["data/a.txt", "data/sub/b.txt"]


def test_a_matched_name_with_glob_characters_is_that_file(make: Callable[..., Repo]) -> None:
    toml = """\
[steps.s]
inputs = ["data/*.csv"]
outputs = ["out.txt"]
run = "cat {inputs} > out.txt"
"""
    repo = make({"gitcache.toml": toml, "data/x[1].csv": "bracket\n", "data/x1.csv": "one\n"})
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert list(inputs(repo)) == ["data/x1.csv", "data/x[1].csv"]
    assert (repo.root / "out.txt").read_text() == "one\nbracket\n"
    repo.write("data/x[1].csv", "changed\n")  # only the file with brackets in its name
    status = json.loads(repo.run("status", "--json").stdout)[0]
    assert status["state"] == "stale"
    assert status["reasons"][0].startswith("input data/x[1].csv changed")
    assert repo.run("run").exit_code == 0
    assert (repo.root / "out.txt").read_text() == "one\nchanged\n"

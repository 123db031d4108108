"""A record (fetched, or forged under a genuine signature) that holds symlinks.

A symlink output may point to any path inside the worktree except into a `.git` (at
any depth: nested repositories and submodules have hooks too); absolute links and
links that leave the worktree, lexically or through links already there, are
refused. And whatever links a record made, the step's next run never writes
through them: declared outputs are removed before the command runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.gitrepo import MODE_LINK
from tests.helpers import Repo, gitcache_env, runs
from tests.remotes import forge

TOML = """\
[steps.make]
inputs = ["in.txt"]
outputs = ["out"]
run = "echo ran >> counter.log && mkdir -p out && cat in.txt > out/a.txt"
"""
IGNORE = "out/\ncounter.log\n"
HOOK = b"#!/bin/sh\necho hook\n"


@pytest.fixture
def repo(make: Callable[..., Repo]) -> Repo:
    """A recorded step, a tracked source file and a nested repository with a hook."""
    repo = make(
        {"gitcache.toml": TOML, ".gitignore": IGNORE, "in.txt": "one\n", "src/tracked.txt": "x\n"}
    )
    nested = repo.root / "vendor" / "lib"
    nested.mkdir(parents=True)
    repo.git("-C", str(nested), "init", "-q")
    hooks = nested / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "post-checkout").write_bytes(HOOK)
    assert repo.run("run").exit_code == 0 and runs(repo) == 1
    return repo


def signature(repo: Repo) -> str:
    (name,) = repo.refs("refs/gitcache/sig/")
    return name.rsplit("/", 1)[1]


def forge_links(repo: Repo, links: dict[str, str]) -> str:
    """Replace the step's record by one whose outputs are these symlinks; outputs gone."""
    outputs = {path: (target.encode(), MODE_LINK) for path, target in links.items()}
    forged = forge(repo, signature(repo), outputs)
    for path in ("out/a.txt", *links):
        (repo.root / path).unlink(missing_ok=True)
    return forged


def test_a_link_inside_the_worktree_is_restored_and_the_next_run_does_not_write_through_it(
    repo: Repo,
) -> None:
    forge_links(repo, {"out/a.txt": "../src/tracked.txt"})
    restored = repo.run("run")
    assert restored.exit_code == 0 and "restored from git" in restored.stderr
    assert os.readlink(repo.root / "out/a.txt") == "../src/tracked.txt"  # allowed: inside
    repo.write("in.txt", "two\n")  # a new signature: the step runs
    ran = repo.run("run")
    assert ran.exit_code == 0 and runs(repo) == 2
    assert repo.read("src/tracked.txt") == "x\n"  # not truncated through the link
    assert not (repo.root / "out/a.txt").is_symlink() and repo.read("out/a.txt") == "two\n"


@pytest.mark.parametrize(
    "target",
    [
        "../vendor/lib/.git/hooks/post-checkout",
        "../vendor/lib/.GIT/hooks/post-checkout",
        "../vendor/lib/.git./hooks/post-checkout",
        "../vendor/lib/.git",
        "../src/../vendor/lib/.git/config",
    ],
)
def test_a_link_into_a_nested_git_directory_is_refused(repo: Repo, target: str) -> None:
    forged = forge_links(repo, {"out/a.txt": target})
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert "symlink into .git" in result.stderr and "running the step instead" in result.stderr
    assert runs(repo) == 2 and not (repo.root / "out/a.txt").is_symlink()
    assert (repo.root / "vendor/lib/.git/hooks/post-checkout").read_bytes() == HOOK
    assert forged not in repo.refs("refs/gitcache/sig/").values()  # replaced by the run


def test_a_link_into_git_through_a_link_already_in_the_worktree_is_refused(repo: Repo) -> None:
    (repo.root / "vendor" / "meta").symlink_to("lib/.git")  # the user's own link
    forge_links(repo, {"out/a.txt": "../vendor/meta/hooks/post-checkout"})
    result = repo.run("run")
    assert result.exit_code == 0 and "symlink into .git" in result.stderr
    assert (repo.root / "vendor/lib/.git/hooks/post-checkout").read_bytes() == HOOK


def test_a_link_to_the_git_directory_itself_is_refused(repo: Repo) -> None:
    forge_links(repo, {"out/a.txt": "../.git"})
    result = repo.run("run")
    assert result.exit_code == 0 and "symlink into .git" in result.stderr


def test_an_absolute_link_is_refused_even_into_the_worktree(repo: Repo) -> None:
    target = str(repo.root / "src" / "tracked.txt")
    forge_links(repo, {"out/a.txt": target})
    result = repo.run("run")
    assert result.exit_code == 0
    assert f"symlink to {target!r} is an absolute path" in result.stderr
    assert runs(repo) == 2 and repo.read("src/tracked.txt") == "x\n"


def test_a_link_out_of_the_worktree_is_refused(repo: Repo, tmp_path: Path) -> None:
    forge_links(repo, {"out/a.txt": "../../elsewhere"})
    result = repo.run("run")
    assert result.exit_code == 0 and "leaves the worktree" in result.stderr


@pytest.mark.parametrize("mode", ["force", "ignore"])
def test_force_and_ignore_runs_do_not_write_through_a_link_either(repo: Repo, mode: str) -> None:
    forge_links(repo, {"out/a.txt": "../src/tracked.txt"})
    assert repo.run("run").exit_code == 0 and (repo.root / "out/a.txt").is_symlink()
    result = repo.run("run", "-s", mode)
    assert result.exit_code == 0 and runs(repo) == 2
    assert repo.read("src/tracked.txt") == "x\n"
    assert repo.read("out/a.txt") == "one\n"


def test_a_declared_output_that_is_a_link_to_a_directory_is_unlinked_not_emptied(
    make: Callable[..., Repo],
) -> None:
    toml = '[steps.make]\noutputs = ["out"]\nrun = "mkdir out && echo new > out/f"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out\n", "keep/f": "precious\n"})
    (repo.root / "out").symlink_to("keep")
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert repo.read("keep/f") == "precious\n"  # the link went, not what it points to
    assert not (repo.root / "out").is_symlink() and repo.read("out/f") == "new\n"


def test_a_symlinked_directory_inside_a_directory_output_is_removed_as_a_link(
    make: Callable[..., Repo],
) -> None:
    toml = (
        '[params]\nn = 1\n[steps.make]\noutputs = ["out"]\n'
        'run = "mkdir -p out && ln -s ../keep out/d && echo {n} > out/n"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n", "keep/f": "precious\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("run", "-p", "n=2").exit_code == 0
    assert repo.read("keep/f") == "precious\n"
    assert os.readlink(repo.root / "out/d") == "../keep"


def test_a_python_step_does_not_write_through_a_link_in_its_outputs(
    make: Callable[..., Repo],
) -> None:
    files = {"gitcache.toml": "", "plot.py": PLOT, "src/tracked.txt": "x\n"}
    repo = make({**files, ".gitignore": "figs/\n__pycache__/\n"})
    (repo.root / "figs").mkdir()
    (repo.root / "figs" / "a.txt").symlink_to("../src/tracked.txt")  # as a record could
    ran = subprocess.run(
        [sys.executable, "plot.py", "3"],
        cwd=repo.root,
        env=gitcache_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert repo.read("src/tracked.txt") == "x\n"
    assert repo.read("figs/a.txt") == "3\n" and not (repo.root / "figs/a.txt").is_symlink()


PLOT = """
import sys
from pathlib import Path
import gitcache

@gitcache.step(outputs=["figs/{name}.txt"])
def plot(name: str, value: int) -> int:
    Path(f"figs/{name}.txt").write_text(f"{value}\\n")
    return value

print(plot("a", int(sys.argv[1])))
"""

"""An output directory nested deeper than Python's recursion limit (1,000 frames).

Linux allows any depth through relative paths; gitcache reaches a file by its path from
the worktree's root, so the deepest output it supports is one whose full path fits in
PATH_MAX (4,096 bytes): 1,500 levels of one-letter names (~3,000 bytes) do. Storing it
(its record's trees), an input's `**` over it, clearing it before a run, restoring it
and removing it go without recursion per level.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitcache.dirtree import make_dirs, remove_tree, walk
from tests.helpers import Repo, runs

DEPTH = 1500
MAKE = """\
import os, sys
os.mkdir("out")
os.chdir("out")
for _ in range(int(sys.argv[1])):
    os.mkdir("a")
    os.chdir("a")
with open("x", "w") as f:
    f.write("deep\\n")
"""
TOML = f"""\
[steps.deep]
outputs = ["out"]
run = "echo ran >> counter.log && python3 make.py {DEPTH}"

[steps.use]
inputs = ["out/**/x"]
outputs = ["found.txt"]
run = "echo {{inputs}} | wc -c > found.txt"

[steps.whole]
inputs = ["out"]
outputs = ["whole.txt"]
run = "find out -name x | wc -l > whole.txt"
"""
DEEP_FILE = "out/" + "a/" * DEPTH + "x"


@pytest.fixture(autouse=True)
def nothing_deep_left(tmp_path: Path) -> Iterator[None]:
    """pytest's clean-up of old temporary directories (shutil.rmtree) recurses per level,
    and would fail on these trees in a later session: each test removes its own."""
    yield
    subprocess.run(["rm", "-rf", str(tmp_path)], check=False)


def deep_dirs(top: Path, depth: int) -> None:
    """top/a/a/.../a (depth levels), each made relative to the one above (no long path)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("a", dir_fd=fd)
            below = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
        os.close(os.open("x", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
        os.symlink("..", "up", dir_fd=fd)  # removed, never followed
    finally:
        os.close(fd)


def test_a_deep_output_is_recorded_used_cleared_restored_and_removed(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": TOML, "make.py": MAKE, ".gitignore": "out/\n*.txt\n*.log\n"})
    first = repo.run("run")
    assert first.exit_code == 0, first.stderr
    assert runs(repo) == 1 and (repo.root / DEEP_FILE).read_text() == "deep\n"
    # `use`'s input `out/**/x` found the deep file: {inputs} is its path
    assert int(repo.read("found.txt")) == len(DEEP_FILE) + 1
    assert int(repo.read("whole.txt")) == 1  # the directory as an input: walked to the end
    shown = repo.git("show", f"refs/gitcache/step/deep:outputs/{DEEP_FILE}")
    assert shown == "deep\n"  # the record's trees nest as deep

    assert repo.run("run").exit_code == 0 and runs(repo) == 1  # a no-op
    subprocess.run(["rm", "-rf", str(repo.root / "out")], check=True)
    restored = repo.run("run")
    assert restored.exit_code == 0, restored.stderr
    assert "restored from git" in restored.stderr and runs(repo) == 1
    assert (repo.root / DEEP_FILE).read_text() == "deep\n"

    forced = repo.run("run", "-s", "force", "deep")  # clears the deep output first
    assert forced.exit_code == 0, forced.stderr
    assert runs(repo) == 2 and (repo.root / DEEP_FILE).read_text() == "deep\n"

    removed = repo.run("remove", "--outputs", "deep")
    assert removed.exit_code == 0, removed.stderr
    assert not (repo.root / DEEP_FILE).exists()
    assert repo.run("restore", "deep").exit_code == 0
    assert (repo.root / DEEP_FILE).read_text() == "deep\n"


def test_a_declared_output_deeper_than_the_recursion_limit_is_matched_against_inputs(
    make: Callable[..., Repo],
) -> None:
    """The step graph matches each input against each declared output component by
    component: a declared path of 1,500 levels, and a `**` input, need no recursion."""
    deep = "gen/" + "a/" * DEPTH + "x"
    toml = (
        f'[steps.gen]\noutputs = ["{deep}"]\nrun = "echo gen"\n\n'
        '[steps.use]\ninputs = ["gen/**/x"]\noutputs = ["u.txt"]\nrun = "echo use > u.txt"\n'
    )
    repo = make({"gitcache.toml": toml})
    status = repo.run("status", "use")
    assert status.exit_code == 0, status.stderr
    assert "upstream step gen" in status.stdout


def test_trees_deeper_than_path_max_are_removed_without_following_links(tmp_path: Path) -> None:
    """remove_tree holds one descriptor at a time and no long path: any depth goes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept\n")
    top = tmp_path / "top"
    top.mkdir()
    (top / "link").symlink_to(outside)
    deep_dirs(top, 3000)  # ~6,000 bytes below top: past PATH_MAX
    remove_tree(top)
    assert not top.exists() and (outside / "keep").read_text() == "kept\n"


def test_a_directory_moved_out_while_it_is_removed_stops_the_removal_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Going back up by `..` from a directory that another process moved elsewhere would
    lead the removal into the place it was moved to: it stops there instead."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept\n")
    top = tmp_path / "top"
    (top / "x" / "y").mkdir(parents=True)
    (top / "x" / "y" / "file").write_text("f\n")
    unlink = os.unlink

    def moving_unlink(name: str, *args: object, **kwargs: object) -> None:
        unlink(name, *args, **kwargs)  # type: ignore[arg-type]
        if name == "file":  # remove_tree is inside top/x/y: move it away now
            os.rename(top / "x" / "y", elsewhere / "y")

    monkeypatch.setattr(os, "unlink", moving_unlink)
    with pytest.raises(OSError, match="moved while it was being removed"):
        remove_tree(top)
    assert (elsewhere / "keep.txt").read_text() == "kept\n"
    assert (elsewhere / "y").is_dir()


def test_walk_and_make_dirs_go_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    made = tmp_path / "made"
    make_dirs(made / ("b/" * DEPTH))
    top = tmp_path / "top"
    top.mkdir()
    deep_dirs(top, DEPTH)
    found = list(walk(top))
    assert len(found) == DEPTH + 1
    assert found[-1][1:] == (["up"], ["x"])  # a link to a directory is listed, not walked
    bottom_up = [dirpath for dirpath, _dirs, _names in walk(top, topdown=False)]
    assert bottom_up == [dirpath for dirpath, _dirs, _names in reversed(found)]
    assert [d for d, _dirs, _names in walk(made)][-1] == str(made) + "/b" * DEPTH

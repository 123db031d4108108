"""Input expansion: the matches of the standard glob, taken literally once matched, and
`**` ends on a symlink cycle (the standard glob never does)."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.gitrepo import GitRepo
from gitcache.statcache import StatCache
from gitcache.worktree import Worktree
from tests.helpers import Repo

FILES = {
    "data/a.csv": "a",
    "data/.hidden.csv": "h",
    "data/sub/b.csv": "b",
    "data/sub/deep/c.csv": "c",
    "data/sub/deep/c.txt": "c",
    "data/.dot/d.csv": "d",
    "docs/x[1].csv": "x",
    "docs/x1.csv": "1",
    "top.csv": "t",
}


@pytest.fixture
def tree(make: Callable[..., Repo]) -> Worktree:
    repo = GitRepo.discover(make(FILES).root)
    return Worktree(repo, StatCache(repo.state_dir))


def standard(root: Path, pattern: str, tree: Worktree) -> list[str]:
    """What the standard glob matches, each match expanded (escaped) like a path, and
    the path the pattern spells when it exists (as git's pathspecs match it)."""
    matches = glob.glob(pattern, root_dir=root, recursive=True)
    if os.path.lexists(root / pattern):
        matches.append(pattern)
    return sorted(
        {f for m in matches for f in tree.expand([glob.escape(Path(m).as_posix())]).files}
    )


def test_a_match_is_a_path_not_a_pattern(tree: Worktree) -> None:
    # `docs/x[1].csv`, globbed again, would be `docs/x1.csv` only.
    assert tree.expand(["docs/*"]).files == ["docs/x1.csv", "docs/x[1].csv"]
    assert tree.expand(["docs/x*"]).files == ["docs/x1.csv", "docs/x[1].csv"]
    assert tree.expand(["docs/x[[]1].csv"]).files == ["docs/x[1].csv"]


def test_a_pattern_also_matches_the_name_it_spells(tree: Worktree) -> None:
    # The standard glob reads `docs/x[1].csv` as `docs/x1.csv`: an input naming the
    # file `x[1].csv` would leave it out of the signature (a stale hit when it changes).
    assert tree.expand(["docs/x[1].csv"]).files == ["docs/x1.csv", "docs/x[1].csv"]
    (tree.root / "docs" / "x1.csv").unlink()
    assert tree.expand(["docs/x[1].csv"]).files == ["docs/x[1].csv"]
    (tree.root / "d[1]").mkdir()
    (tree.root / "d[1]" / "f?.txt").write_text("q")
    assert tree.expand(["d[1]/f?.txt"]).files == ["d[1]/f?.txt"]
    assert tree.expand(["d[1]"]).files == ["d[1]/f?.txt"]


@pytest.mark.parametrize(
    "pattern",
    [
        "data/**/*.csv",
        "**/*.csv",
        "**",
        "data/**",
        "d*/**/c.*",
        "data/sub/**/deep",
        "data/*.csv",
        "data/.*",
        "data/*/",
        "docs/*",
        "docs/x[1].csv",
        "data/**/sub/**/*.txt",
        "*/sub",
    ],
)
def test_globs_match_as_the_standard_glob_does(tree: Worktree, pattern: str) -> None:
    assert tree.expand([pattern]).files == standard(tree.root, pattern, tree)


def test_a_link_cycle_under_a_recursive_glob_ends(tree: Worktree) -> None:
    (tree.root / "data" / "sub" / "up").symlink_to("..")  # to a directory on the way
    (tree.root / "data" / "sub" / "self").symlink_to(".")
    (tree.root / "data" / "sub" / "side").symlink_to("../../docs")  # to another one
    (tree.root / "data" / "loop").symlink_to("loop2")  # a loop of links: no directory
    (tree.root / "data" / "loop2").symlink_to("loop")
    for pattern in ("data/**/*.csv", "data/**", "**/*.csv", "data"):
        found = tree.expand([pattern]).files
        assert "data/sub/side/x[1].csv" in found  # a symlinked directory is walked
        assert "data/sub/b.csv" in found and "data/sub/deep/c.csv" in found
        assert not any("/up/" in f or "/self/" in f for f in found), found


def test_a_directory_reached_twice_is_walked_under_each_path(tree: Worktree) -> None:
    # Not a cycle: `docs` is entered under its own path and through the link.
    (tree.root / "data" / "docs").symlink_to("../docs")
    found = tree.expand(["**/x1.csv"]).files
    assert found == ["data/docs/x1.csv", "docs/x1.csv"]

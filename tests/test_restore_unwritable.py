"""A worktree directory that refuses writes (immutable, read-only): a restore says
which path in one line, exit 1, and changes nothing there."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Repo

TOML = """\
[steps.one]
outputs = ["res/a.txt", "res/b.txt"]
run = "mkdir -p res && echo a > res/a.txt && echo b > res/b.txt"
"""


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """No file may be made, renamed or removed in `directory` meanwhile."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    done = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("root, and chattr +i is not available here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.parametrize("absent", [False, True])  # through a temporary file, or in place
def test_an_unwritable_output_directory_is_one_line(
    make: Callable[..., Repo], absent: bool
) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": "res/\n"})
    assert repo.process("run").returncode == 0
    res = repo.root / "res"
    if absent:
        (res / "b.txt").unlink()
    else:
        (res / "b.txt").write_text("changed\n")
    with _unwritable(res):
        done = repo.process("restore", "--force", "one")
        after = sorted(p.name for p in res.iterdir())
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr.startswith("gitcache: error: cannot restore res/b.txt: ")
    assert done.stderr.count("\n") == 1
    assert after == (["a.txt"] if absent else ["a.txt", "b.txt"])
    if not absent:
        assert (res / "b.txt").read_text() == "changed\n"

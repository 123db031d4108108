"""The two-step workflow the hostile-record tests share: `make` writes out/data.txt,
`more` reads it; each run of a command adds a line to counter.log (helpers.runs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import Repo
from tests.remotes import bare

TOML = """\
[steps.make]
outputs = ["out/data.txt"]
run = "echo ran >> counter.log && echo made > {outputs}"

[steps.more]
inputs = ["out/data.txt"]
outputs = ["out/more.txt"]
run = "echo ran >> counter.log && cat {inputs} {inputs} > {outputs}"
"""
IGNORE = "out/\ncounter.log\n"


def with_origin(make: Callable[..., Repo], tmp_path: Path) -> tuple[Path, Repo]:
    """A bare `origin` and a repository `a` of the workflow whose main is pushed there."""
    origin = bare(tmp_path / "origin.git")
    a = make({"gitcache.toml": TOML, ".gitignore": IGNORE}, name="a")
    a.git("remote", "add", "origin", str(origin))
    a.git("push", "-q", "origin", "main")
    return origin, a

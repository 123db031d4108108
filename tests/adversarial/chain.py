"""The two-step workflow the hostile-record tests share: `make` writes out/data.txt,
`more` reads it; each run of a command adds a line to counter.log (`runs`)."""

from __future__ import annotations

from tests.helpers import Repo

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


def runs(repo: Repo) -> int:
    """How many commands ran so far (lines of counter.log)."""
    path = repo.root / "counter.log"
    return len(path.read_text().splitlines()) if path.exists() else 0

"""docs/python.md, followed top to bottom in an IPython shell, does what it says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.python.conftest import PyRepo

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"

RUNNER = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for cell in json.load(open(sys.argv[1])):
    print("=== cell")
    shell.run_cell(cell).raise_error()
"""


def cells() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    # The options block shows a decorator's arguments, not a whole definition.
    return [b for b in blocks if not b.startswith("@gitcache.step(\n")]


def test_the_python_tutorial_runs_as_written(pyrepo: PyRepo) -> None:
    pytest.importorskip("IPython")
    pyrepo.write("raw.csv", "1 2 3 4\n")
    pyrepo.commit("data")
    (pyrepo.root / "cells.json").write_text(json.dumps(cells()))
    done = pyrepo.python(RUNNER, "cells.json")
    out = done.stdout
    assert out.count("analyzing 4 values") == 2  # the first call, and after scale changed
    assert "argument dt changed (0.5 -> 0.7)" in out
    tasks = sorted(str(p.relative_to(pyrepo.root)) for p in (pyrepo.root / "tasks").glob("*"))
    assert len(tasks) == 4
    ran = pyrepo.process("run", *tasks, "-j", "2")
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count(": ran") == 4
    log = json.loads(pyrepo.run("log", "--json").stdout)
    assert {row["step"] for row in log} == {"analyze", "report", "total"}

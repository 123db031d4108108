"""Files whose names hold glob characters (`x[1].csv`, `photo [2].png`) are inputs and
outputs like any other: an input naming one is that file, so editing it is never a hit."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import Repo

PLAIN = """\
[steps.s]
inputs = ["data/x[1].csv"]
outputs = ["out.txt"]
run = "cat 'data/x[1].csv' > out.txt"
"""


def test_an_input_naming_a_bracketed_file_reads_that_file(make: Callable[..., Repo]) -> None:
    # `data/x1.csv` is what the standard glob makes of the pattern: before, the
    # signature held it alone, and editing `data/x[1].csv` was a stale hit.
    repo = make(
        {"gitcache.toml": PLAIN, "data/x[1].csv": "real\n", "data/x1.csv": "decoy\n"},
    )
    assert repo.run("run").exit_code == 0
    repo.write("data/x[1].csv", "changed\n")
    status = repo.run("status")
    assert "stale" in status.stdout and "data/x[1].csv" in status.stdout, status.stdout
    again = repo.run("run")
    assert again.exit_code == 0 and "s: ran" in again.stderr, again.stderr
    assert repo.read("out.txt") == "changed\n"
    (repo.root / "data" / "x1.csv").unlink()  # the wildcard's match was an input too
    assert "input data/x1.csv removed" in repo.run("status").stdout
    assert "s: ran" in repo.run("run").stderr
    assert "up to date" in repo.run("status").stdout  # the literal file alone counts
    repo.write("data/x[1].csv", "again\n")
    assert "s: ran" in repo.run("run").stderr
    assert repo.read("out.txt") == "again\n"


FOREACH = """\
[steps.thumbs]
foreach = "images/*.png"
inputs = ["{item}"]
outputs = ["thumbs/{item.stem}.txt"]
run = "cat {item} > {outputs}"

[steps.report]
inputs = ["thumbs/photo [2].txt"]
outputs = ["report.txt"]
run = "cat 'thumbs/photo [2].txt' > {outputs}"
"""


def test_a_sweep_over_bracketed_file_names(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": FOREACH,
            "images/photo [2].png": "two\n",
            "images/photo 2.png": "decoy\n",
            "images/é[1].png": "one\n",
        },
    )
    ran = repo.run("run", "-j", "2")
    assert ran.exit_code == 0, ran.stderr
    # the report reads an item's output: it runs after that item, even in parallel
    assert ran.stderr.index("thumbs[images/photo [2].png]: ran") < ran.stderr.index(
        "report: running"
    )
    assert repo.read("thumbs/é[1].txt") == "one\n"
    assert repo.read("report.txt") == "two\n"
    repo.write("images/photo [2].png", "TWO\n")  # one item and the report re-run
    again = repo.run("run")
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count(": ran [") == 2, again.stderr
    assert "thumbs[images/photo [2].png]: ran" in again.stderr
    assert repo.read("report.txt") == "TWO\n"
    assert "up to date" in repo.run("run").stderr


def test_a_value_giving_a_wildcard_output_is_refused(make: Callable[..., Repo]) -> None:
    toml = '[steps.s]\nmatrix = { p = ["a?b"] }\noutputs = ["o/{p}"]\nrun = "touch {outputs}"\n'
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 2
    assert "steps.s.outputs: item s[p=\"a?b\"] gives 'o/a?b', a glob" in result.stderr
    template = '[steps.s]\nmatrix = { p = [1] }\noutputs = ["o/[{p}]"]\nrun = "x"\n'
    repo.write("gitcache.toml", template)
    result = repo.run("run")
    assert result.exit_code == 2
    assert "steps.s.outputs: 'o/[{p}]' is a glob; outputs must be paths" in result.stderr

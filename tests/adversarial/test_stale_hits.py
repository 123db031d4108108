"""Changes that change a step's result must change its signature: no stale hit."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.helpers import Repo

# The item's file is not in `inputs`: the command reads it through `{item}` alone.
FOREACH_NO_INPUTS = """\
[steps.copy]
foreach = "images/*.png"
outputs = ["copies/{item.stem}.txt"]
run = "mkdir -p copies && cat {item} > {outputs} && echo 'inputs:{inputs}' >> {outputs}"
"""

DYNAMIC = """\
[params]
v = 1

[steps.make]
outputs = ["gen"]
run = "mkdir -p gen && echo {v} > gen/a.txt && echo same > gen/b.txt"

[steps.use]
foreach = "gen/*.txt"
outputs = ["used/{item.stem}.txt"]
run = "mkdir -p used && cat {item} > {outputs}"
"""


def test_a_foreach_items_file_counts_even_when_inputs_do_not_name_it(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": FOREACH_NO_INPUTS, "images/a.png": "a\n", "images/b.png": "b\n"})
    assert repo.run("run").exit_code == 0
    assert repo.read("copies/a.txt") == "a\ninputs:\n"  # `{inputs}` is still what is declared
    repo.write("images/a.png", "edited\n")
    status = repo.run("status", "-v")
    assert "copy[images/a.png]  stale" in status.stdout, status.stdout
    assert "input images/a.png changed" in status.stdout
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert "copy[images/a.png]: ran" in result.stderr
    assert "copy[images/b.png]: up to date" in result.stderr  # the other item keeps its record
    assert repo.read("copies/a.txt") == "edited\ninputs:\n"


def test_a_dynamic_foreach_item_reruns_when_its_producer_changes_the_file(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": DYNAMIC})
    assert repo.run("run").exit_code == 0
    result = repo.run("run", "-p", "v=2")
    assert result.exit_code == 0, result.stderr
    assert "use[gen/a.txt]: ran" in result.stderr
    assert "use[gen/b.txt]: up to date" in result.stderr
    assert repo.read("used/a.txt") == "2\n"


# Item a[n=1]'s record is deferred (written when the next command starts). With -j 2,
# m (started first) rewrites the item's output and d hashes it as an input before that:
# the seal written with the deferred record must not vouch for the rewritten file.
REWRITTEN_BEFORE_DEFERRED_SEAL = """\
[steps.a]
matrix = { n = [1] }
outputs = ["a/{n}.out"]
run = "while [ ! -e m.started ]; do sleep 0.01; done; sleep 0.2; mkdir -p a; echo good > {outputs}"

[steps.m]
outputs = ["m.out"]
run = "touch m.started; while [ ! -e a/1.out ]; do sleep 0.01; done; sleep 0.3; echo evil > a/1.out; echo m > m.out"

[steps.d]
inputs = ["a/1.out", "m.out"]
outputs = ["d.out"]
run = "cat {inputs} > {outputs}"
"""


def test_an_output_rewritten_before_its_deferred_seal_is_not_up_to_date(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": REWRITTEN_BEFORE_DEFERRED_SEAL, ".gitignore": "a/\n*.out\n"})
    result = repo.run("run", "-j", "2")
    assert result.exit_code == 0, result.stderr
    assert repo.read("a/1.out") == "evil\n"
    assert repo.git("show", "refs/gitcache/step/a:outputs/a/1.out") == "good\n"
    status = json.loads(repo.run("status", "--json", "a").stdout)
    assert [s["state"] for s in status] == ["restorable"], status

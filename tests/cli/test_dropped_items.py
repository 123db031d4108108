"""Outputs of sweep items no longer in the sweep (a value taken out of `matrix`, a
`foreach` file deleted) stay in the worktree, as with DVC and Snakemake: `status`
names them, since a step reading their directory still sees them."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import Repo

TOML = """\
[steps.thumbs]
foreach = "images/*.png"
inputs = ["{item}"]
outputs = ["thumbs/{item.stem}.txt"]
run = "cp {inputs} {outputs}"

[steps.train]
matrix = { lr = [0.1, 0.01] }
outputs = ["models/{lr}.pt"]
run = "echo {lr} > {outputs}"

[steps.report]
inputs = ["thumbs/"]
outputs = ["report.txt"]
run = "cat thumbs/* > {outputs}"
"""

NOTE = "of items no longer in the sweep still in the worktree"


def _repo(make: Callable[..., Repo]) -> Repo:
    files = {"gitcache.toml": TOML, ".gitignore": "thumbs/\nmodels/\nreport.txt\n"}
    files |= {f"images/{name}.png": f"{name}\n" for name in ("a", "b", "c")}
    repo = make(files)
    assert repo.run("run").exit_code == 0
    return repo


def test_status_names_the_outputs_of_dropped_items(make: Callable[..., Repo]) -> None:
    repo = _repo(make)
    assert NOTE not in repo.run("status").stdout
    (repo.root / "images" / "b.png").unlink()
    repo.write("gitcache.toml", TOML.replace("[0.1, 0.01]", "[0.1]"))
    shown = repo.run("status").stdout
    assert f"1 file {NOTE}: thumbs/b.txt" in shown
    assert f"1 file {NOTE}: models/0.01.pt" in shown
    assert f"1 file {NOTE}: thumbs/b.txt" in repo.run("status", "-v").stdout
    assert repo.read("thumbs/b.txt") == "b\n"  # said, never deleted
    # Once the file is gone, nothing is said.
    (repo.root / "thumbs" / "b.txt").unlink()
    shown = repo.run("status").stdout
    assert f"{NOTE}: thumbs/b.txt" not in shown
    assert "input thumbs/b.txt removed" in shown  # the report that read it is stale


def test_a_parameter_that_narrows_a_sweep_drops_nothing(make: Callable[..., Repo]) -> None:
    repo = _repo(make)
    shown = repo.run("status", "-p", "lr=0.1").stdout
    assert NOTE not in shown and "train" in shown
    assert repo.run("status", "--json").exit_code == 0

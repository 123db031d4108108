"""Sweeps end to end: `matrix` and `foreach` steps, an item is a step of its own."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.helpers import Repo

MATRIX = """\
[steps.train]
matrix = { lr = [0.1, 0.01], seed = [1, 2, 3] }
inputs = ["train.sh"]
outputs = ["models/{lr}-{seed}.txt"]
run = "sh train.sh {lr} {seed} > {outputs}"
"""

FOREACH = """\
[steps.thumbs]
foreach = "images/*.png"
inputs = ["{item}"]
outputs = ["thumbs/{item.stem}.txt"]
run = "wc -c < {item} > {outputs}"
"""

REPORT = """\
[steps.report]
inputs = ["models/", "thumbs/"]
outputs = ["report.txt"]
run = "cat {inputs} > {outputs}"
"""


def _files() -> dict[str, str]:
    return {
        "train.sh": 'echo "lr=$1 seed=$2"\n',
        "images/a.png": "a\n",
        "images/b c.png": "bb\n",
        "images/\u00fc.png": "ccc\n",
        ".gitignore": "models/\nthumbs/\nreport.txt\n",
    }


def _sweep(make: Callable[..., Repo], toml: str = MATRIX + FOREACH + REPORT) -> Repo:
    return make({"gitcache.toml": toml, **_files()})


def _record(repo: Repo, ref: str) -> dict[str, object]:
    return json.loads(repo.git("show", f"{ref}:record.json"))  # type: ignore[no-any-return]


def _ran(stderr: str) -> list[str]:
    return [
        line.split(": ")[1] for line in stderr.splitlines() if line.split(" [")[0].endswith(": ran")
    ]


def test_every_item_has_its_own_record(make: Callable[..., Repo]) -> None:
    repo = _sweep(make)
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert len(_ran(result.stderr)) == 6 + 3 + 1
    assert repo.read("models/0.01-3.txt") == "lr=0.01 seed=3\n"
    assert repo.read("thumbs/b c.txt").strip() == "3"
    refs = repo.refs()
    assert len([r for r in refs if r.startswith("refs/gitcache/sig/")]) == 10
    items = [r for r in refs if r.startswith("refs/gitcache/item/train/")]
    assert len(items) == 6
    record = _record(repo, items[0])
    assert set(record["item"]) == {"lr", "seed"}  # type: ignore[arg-type]
    assert record["components"]["params"] == record["item"]  # type: ignore[index]
    report = _record(repo, "refs/gitcache/step/report")
    assert "item" not in report  # a plain step's record is as before
    assert len(report["components"]["inputs"]) == 9  # type: ignore[arg-type,index]


def test_noop_then_a_new_value_runs_only_its_items(make: Callable[..., Repo]) -> None:
    repo = _sweep(make)
    assert repo.run("run").exit_code == 0
    again = repo.run("run")
    assert again.exit_code == 0 and _ran(again.stderr) == []
    repo.write("gitcache.toml", (MATRIX + FOREACH + REPORT).replace("0.01]", "0.01, 0.001]"))
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == [
        "train[lr=0.001,seed=1]",
        "train[lr=0.001,seed=2]",
        "train[lr=0.001,seed=3]",
        "report",
    ]


def test_editing_one_file_reruns_one_item_and_deleting_drops_one(
    make: Callable[..., Repo],
) -> None:
    repo = _sweep(make)
    assert repo.run("run").exit_code == 0
    repo.write("images/a.png", "changed\n")
    result = repo.run("run")
    assert _ran(result.stderr) == ["thumbs[images/a.png]", "report"]
    (repo.root / "images/a.png").unlink()
    (repo.root / "thumbs/a.txt").unlink()
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == ["report"]
    assert "thumbs[images/a.png]" not in result.stderr


def test_foreach_paths_with_spaces_and_unicode_are_quoted(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, FOREACH)
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert repo.read("thumbs/\u00fc.txt").strip() == "4"
    ref = next(r for r in repo.refs() if r.startswith("refs/gitcache/step/"))
    assert _record(repo, ref)["command"] in (
        "wc -c < 'images/\u00fc.png' > 'thumbs/\u00fc.txt'",
        "wc -c < 'images/b c.png' > 'thumbs/b c.txt'",
        "wc -c < images/a.png > thumbs/a.txt",
    )

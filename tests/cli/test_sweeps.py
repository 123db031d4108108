"""Sweeps end to end: `matrix` and `foreach` steps, an item is a step of its own."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo
from tests.hookutil import hooks_import_this_checkout  # noqa: F401 (a fixture)
from tests.remotes import bare, clone

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


def test_selecting_items_and_overriding_an_axis(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    result = repo.run("run", "train[lr=0.1]")
    assert _ran(result.stderr) == [f"train[lr=0.1,seed={s}]" for s in (1, 2, 3)]
    result = repo.run("run", "train[seed=2,lr=0.01]")
    assert _ran(result.stderr) == ["train[lr=0.01,seed=2]"]
    # -p narrows to an existing value (nothing new to run) ...
    result = repo.run("run", "-p", "lr=0.1")
    assert result.exit_code == 0 and _ran(result.stderr) == []
    assert "train[lr=0.01" not in result.stderr
    # ... or replaces the axis with a new one; typed like the axis (5e-1 is 0.5)
    result = repo.run("run", "-p", "lr=5e-1", "-p", "seed=1")
    assert _ran(result.stderr) == ["train[lr=0.5,seed=1]"]
    assert repo.read("models/0.5-1.txt") == "lr=0.5 seed=1\n"


def test_status_groups_items_and_lists_them_with_v(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    assert repo.run("run").exit_code == 0
    repo.write("gitcache.toml", MATRIX.replace("seed = [1, 2, 3]", "seed = [1, 2, 3, 4]"))
    (repo.root / "models/0.1-1.txt").unlink()
    text = repo.run("status").stdout
    assert text.splitlines() == [
        "train  5/8 up to date; 1 restorable from cache: lr=0.1,seed=1 (output "
        "models/0.1-1.txt missing); 2 stale: seed=4 (new item)"
    ]
    verbose = repo.run("status", "-v").stdout.splitlines()
    assert "train[lr=0.01,seed=4]  stale" in verbose
    assert verbose[verbose.index("train[lr=0.01,seed=4]  stale") + 1].strip() == "new item"
    rows = json.loads(repo.run("status", "--json", "train[seed=4]").stdout)
    assert [(r["step"], r["label"], r["item"], r["state"]) for r in rows] == [
        ("train", "train[lr=0.1,seed=4]", {"lr": 0.1, "seed": 4}, "stale"),
        ("train", "train[lr=0.01,seed=4]", {"lr": 0.01, "seed": 4}, "stale"),
    ]


def test_log_finds_items_by_param_and_selector(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    assert repo.run("run").exit_code == 0
    lines = repo.run("log", "--param", "lr=0.1").stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == [
        f"train[lr=0.1,seed={s}]" for s in (1, 2, 3)
    ]
    rows = json.loads(repo.run("log", "train[seed=3]", "--json").stdout)
    assert sorted(r["label"] for r in rows) == ["train[lr=0.01,seed=3]", "train[lr=0.1,seed=3]"]
    assert rows[0]["item"] == rows[0]["params"]
    shown = repo.run("show", "train[lr=0.01,seed=3]")
    assert shown.exit_code == 0 and "step       train[lr=0.01,seed=3]" in shown.stdout


def test_restore_and_remove_items(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    assert repo.run("run").exit_code == 0
    for path in (repo.root / "models").iterdir():
        path.unlink()
    result = repo.run("restore", "train[lr=0.01]")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (repo.root / "models").iterdir()) == [
        "0.01-1.txt",
        "0.01-2.txt",
        "0.01-3.txt",
    ]
    assert repo.run("remove", "train[lr=0.01]").exit_code == 0
    items = [r for r in repo.refs() if r.startswith("refs/gitcache/item/")]
    sigs = [r for r in repo.refs() if r.startswith("refs/gitcache/sig/")]
    assert len(items) == 3 and len(sigs) == 3
    result = repo.run("run")
    assert sorted(_ran(result.stderr)) == [f"train[lr=0.01,seed={s}]" for s in (1, 2, 3)]


def test_parallel_items_and_a_failing_item(make: Callable[..., Repo]) -> None:
    toml = MATRIX.replace('run = "sh train.sh', 'run = "test {seed} != 2 && sh train.sh')
    repo = _sweep(make, toml + REPORT.replace('"thumbs/"', '"train.sh"'))
    result = repo.run("run", "-j", "3", "-k")
    assert result.exit_code == 1
    assert sorted(_ran(result.stderr)) == [
        f"train[lr={lr},seed={s}]" for lr in ("0.01", "0.1") for s in (1, 3)
    ]
    assert "step 'train[lr=0.1,seed=2]' failed: command exited with status 1" in result.stderr
    assert "gitcache: steps left pending: report" in result.stderr
    # the failed items wrote no record, the others kept theirs
    assert len([r for r in repo.refs() if r.startswith("refs/gitcache/item/")]) == 4
    assert len([r for r in repo.refs() if r.startswith("refs/gitcache/sig/")]) == 4
    result = repo.run("run", "-j", "3")
    assert result.exit_code == 1 and _ran(result.stderr) == []


DYNAMIC = """\
[steps.thumbs]
foreach = "images/*.png"
outputs = ["thumbs/{item.stem}.txt"]
run = "wc -c < {item} > {outputs}"

[steps.small]
foreach = "thumbs/*.txt"
outputs = ["small/{item.stem}.txt"]
run = "cat {item} {item} > {outputs}"

[steps.report]
inputs = ["small/"]
outputs = ["report.txt"]
run = "cat {inputs} > {outputs}"
"""


def test_foreach_over_another_steps_outputs_fans_out_after_it(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": DYNAMIC, **_files(), ".gitignore": "*/\nreport.txt\n"})
    status = repo.run("status").stdout
    assert "small   stale" in status
    assert "waiting on step thumbs (3 items not up to date): its items are known once" in status
    dry = repo.run("run", "-n")
    assert "gitcache: small: would run (items known once thumbs[images/a.png]" in dry.stderr
    result = repo.run("run", "-j", "2")
    assert result.exit_code == 0, result.stderr
    ran = _ran(result.stderr)  # with -j 2, items of one step finish in any order
    assert sorted(ran[3:6]) == [
        "small[thumbs/a.txt]",
        "small[thumbs/b c.txt]",
        "small[thumbs/\u00fc.txt]",
    ]
    assert ran[6:] == ["report"]
    assert repo.read("report.txt").split() == ["2", "2", "3", "3", "4", "4"]
    assert "small   3/3 up to date" in repo.run("status").stdout
    # a new image: one more thumbs item, one more small item, the report
    repo.write("images/d.png", "dddd\n")
    result = repo.run("run")
    assert _ran(result.stderr) == ["thumbs[images/d.png]", "small[thumbs/d.txt]", "report"]
    # outputs removed: restored from records, items enumerated from the restored files
    for directory in ("thumbs", "small"):
        for path in (repo.root / directory).iterdir():
            path.unlink()
    result = repo.run("run")
    assert result.exit_code == 0 and _ran(result.stderr) == []
    assert repo.read("small/d.txt") == "5\n5\n"


def test_a_selector_of_a_dynamic_foreach_that_names_no_item_is_an_error(
    make: Callable[..., Repo],
) -> None:
    """As for any sweep (docs/sweeps.md, "Selecting"): a typo in the selector of a
    step whose items are known once its producer ran does not pass as nothing to do."""
    repo = make({"gitcache.toml": DYNAMIC, **_files(), ".gitignore": "*/\nreport.txt\n"})
    result = repo.run("run", "small[thumbs/zzz.txt]")
    assert result.exit_code != 0
    assert "step 'small' has no item thumbs/zzz.txt (it has 3 items)" in result.stderr
    for command in ("status", "restore"):  # as for `train[lr=7]` (log and remove: records)
        result = repo.run(command, "small[thumbs/zzz.txt]")
        assert result.exit_code == 2, (command, result.stderr)
        assert "step 'small' has no item thumbs/zzz.txt" in result.stderr, command
    # one selector that matches and one that does not: still an error, nothing runs
    result = repo.run("run", "small[thumbs/a.txt]", "small[thumbs/zzz.txt]")
    assert result.exit_code != 0 and "small[thumbs/a.txt]: ran" not in result.stderr
    result = repo.run("run", "small[thumbs/a*]")
    assert result.exit_code == 0 and _ran(result.stderr) == ["small[thumbs/a.txt]"]


@pytest.mark.usefixtures("hooks_import_this_checkout")
def test_items_travel_and_carry_over_with_no_special_case(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin = bare(tmp_path / "origin.git")
    repo = _sweep(make, MATRIX + FOREACH)
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main")
    assert repo.run("hooks", "install").exit_code == 0
    assert repo.run("run").exit_code == 0
    assert repo.run("push", "origin").exit_code == 0
    # another clone restores every item from the fetched records, running nothing
    other = clone(str(origin), tmp_path / "other")
    assert other.run("fetch", "origin").exit_code == 0
    result = other.run("run")
    assert result.exit_code == 0 and _ran(result.stderr) == []
    assert "gitcache: 9 steps: 9 restored from git" in result.stderr
    assert other.refs("refs/gitcache/item/") == repo.refs("refs/gitcache/item/")
    # --remote asks for one item's signature on a miss
    third = clone(str(origin), tmp_path / "third")
    result = third.run("run", "--remote", "origin", "train[lr=0.1,seed=2]")
    assert result.exit_code == 0 and _ran(result.stderr) == []
    assert third.read("models/0.1-2.txt") == "lr=0.1 seed=2\n"
    assert len(third.refs("refs/gitcache/sig/")) == 1
    # an amend carries every item's record over to the new commit
    old = repo.head()
    repo.write("notes.txt", "amended\n")
    repo.git("add", "notes.txt")
    repo.git("commit", "-q", "--amend", "--no-edit")
    lines = repo.run("log", "--commit", "HEAD").stdout.splitlines()
    assert len(lines) == 9 and all(line.endswith("carried over") for line in lines)
    assert all(old[:7] in line for line in lines)


def test_items_recorded_before_ctrl_c_keep_their_records(make: Callable[..., Repo]) -> None:
    toml = (
        "[steps.s]\nmatrix = { a = [1, 2] }\noutputs = ['o/{a}.txt']\n"
        "run = 'if [ {a} = 2 ]; then touch started; sleep 5; fi; echo {a} > {outputs}'\n"
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "o/\nstarted\n"})
    proc = repo.spawn("run")
    deadline = time.monotonic() + 30
    while not (repo.root / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    # item a=1 finished before the interrupt: its refs were written on the way out
    assert len(repo.refs("refs/gitcache/sig/")) == 1
    assert len(repo.refs("refs/gitcache/item/s/")) == 1
    assert repo.run("run").stderr.count(": ran") == 1
    assert not list((repo.root / ".git" / "gitcache" / "tmp").glob("*-items-*"))


def test_remove_outputs_of_items_keeps_them_in_the_store(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    assert repo.run("run").exit_code == 0
    result = repo.run("remove", "--outputs", "train[lr=0.1]")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (repo.root / "models").iterdir()) == [
        "0.01-1.txt",
        "0.01-2.txt",
        "0.01-3.txt",
    ]
    assert repo.run("status").stdout.startswith("train  6/6 up to date")
    result = repo.run("run")
    assert result.exit_code == 0 and _ran(result.stderr) == []
    assert not (repo.root / "models/0.1-1.txt").exists()
    assert repo.run("restore", "train[lr=0.1,seed=1]").exit_code == 0
    assert repo.read("models/0.1-1.txt") == "lr=0.1 seed=1\n"


def test_diff_two_items(make: Callable[..., Repo]) -> None:
    repo = _sweep(make, MATRIX)
    assert repo.run("run").exit_code == 0
    result = repo.run("diff", "train[lr=0.1,seed=1]", "train[seed=1,lr=0.01]")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "(train[lr=0.1,seed=1]) -> " in lines[0] and lines[0].endswith("(train[lr=0.01,seed=1])")
    assert "  param lr changed (0.1 -> 0.01)" in lines
    ambiguous = repo.run("diff", "train[lr=0.1]", "train[lr=0.01,seed=1]")
    assert ambiguous.exit_code == 2
    assert "'train[lr=0.1]' names 3 items with records" in ambiguous.stderr


def test_items_in_a_linked_worktree_keep_their_latest_records_there(
    make: Callable[..., Repo],
) -> None:
    repo = _sweep(make, MATRIX)
    path = repo.root.parent / "linked"
    repo.git("worktree", "add", "-q", "--detach", str(path))
    linked = Repo(path)
    result = linked.run("run", "-p", "seed=9")
    assert result.exit_code == 0, result.stderr
    assert len(_ran(result.stderr)) == 2
    # The main worktree's item refs are untouched; the linked worktree's file has them.
    assert not [r for r in repo.refs() if r.startswith("refs/gitcache/item/")]
    git_dir = Path(linked.git("rev-parse", "--absolute-git-dir").strip())
    steps = json.loads((git_dir / "gitcache" / "latest-records-v1.json").read_text())["steps"]
    assert len([k for k in steps if k.startswith("train/")]) == 2
    status = linked.run("status", "-p", "seed=9")
    assert status.exit_code == 0, status.stderr
    assert "2/2 up to date" in status.stdout
    # gc in the main worktree keeps the items' records the linked worktree holds.
    assert repo.run("gc", "--keep", "0").exit_code == 0
    again = linked.run("run", "-p", "seed=9")
    assert again.exit_code == 0 and _ran(again.stderr) == []

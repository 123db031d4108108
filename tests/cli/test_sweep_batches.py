"""A sweep's records written in batches: one pack and one packed-refs rewrite per batch,
all of it plain git (for-each-ref, fsck --strict, verify-pack, push and fetch), and a
kill -9 in the middle leaves no ref to a partial record."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo
from tests.remotes import bare, clone


def _matrix(count: int, run: str = "echo {a} > {outputs}") -> str:
    values = ", ".join(str(i) for i in range(count))
    return f"[steps.s]\nmatrix = {{ a = [{values}] }}\noutputs = ['o/{{a}}.txt']\nrun = '{run}'\n"


def _ran(stderr: str) -> int:
    return sum(1 for line in stderr.splitlines() if line.split(" [")[0].endswith(": ran"))


def _counts(repo: Repo) -> dict[str, int]:
    lines = repo.git("count-objects", "-v").splitlines()
    return {k: int(v) for k, v in (line.split(": ") for line in lines)}


def _plain_git(repo: Repo) -> None:
    """What git alone says about the store: consistent, packs valid, no lock left."""
    assert repo.git("fsck", "--strict", "--no-progress") == ""
    for index in (repo.root / ".git" / "objects" / "pack").glob("pack-*.idx"):
        assert repo.git("verify-pack", str(index)) == ""
    assert list((repo.root / ".git").rglob("*.lock")) == [
        repo.root / ".git" / "gitcache" / "locks" / "objects.lock"
    ]


def test_a_sweeps_records_are_packs_and_packed_refs_that_git_reads(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": _matrix(150), ".gitignore": "o/\n"})
    loose = _counts(repo)["count"]  # the commit's
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == 150
    refs = repo.refs()
    sig = {n: c for n, c in refs.items() if n.startswith("refs/gitcache/sig/")}
    items = {n: c for n, c in refs.items() if n.startswith("refs/gitcache/item/s/")}
    assert len(sig) == len(items) == 150 and set(sig.values()) == set(items.values())
    assert refs["refs/gitcache/step/s"] in sig.values()
    # refs in packed-refs, records in packs: no file per ref or per object
    assert not [p for p in (repo.root / ".git/refs/gitcache").rglob("*") if p.is_file()]
    counts = _counts(repo)
    assert counts["count"] == loose and counts["packs"] >= 2  # no loose object of ours
    _plain_git(repo)
    some = sorted(items)[42]
    record = json.loads(repo.git("show", f"{some}:record.json"))
    assert repo.git("show", f"{some}:outputs/o/{record['item']['a']}.txt") == (
        f"{record['item']['a']}\n"
    )
    # the signature locks went with the run (recycled, then removed with its scratch)
    # The signature locks' files went; the output locks' (at most 256, reused) stay.
    kept = sorted(p.name for p in (repo.root / ".git/gitcache/locks").iterdir())
    assert kept[0] == "objects.lock" and all(n.startswith("outputs-") for n in kept[1:])
    again = repo.run("run")
    assert again.exit_code == 0 and _ran(again.stderr) == 0
    # a new value: its record joins the others (a loose ref hides nothing, git agrees)
    repo.write("gitcache.toml", _matrix(151))
    assert _ran(repo.run("run").stderr) == 1
    assert len(repo.refs("refs/gitcache/sig/")) == 151
    _plain_git(repo)


def test_kill_9_mid_sweep_leaves_no_ref_to_a_partial_record(make: Callable[..., Repo]) -> None:
    # Item 30 waits (its command says so with a file) until the test has killed gitcache.
    wait = "if [ {a} = 30 ]; then touch started; while [ ! -e stop ]; do sleep 0.02; done; fi; "
    repo = make({"gitcache.toml": _matrix(40, wait + "echo {a} > {outputs}"), ".gitignore": "*\n"})
    proc = repo.spawn("run")
    deadline = time.monotonic() + 60
    while not (repo.root / "started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    (repo.root / "stop").write_text("")
    kept = repo.refs("refs/gitcache/sig/")
    assert len(kept) < 30  # those of a batch not yet written are not there...
    for name, commit in kept.items():  # ...and every ref names a whole record
        record = json.loads(repo.git("show", f"{commit}:record.json"))
        assert name.endswith(record["signature"])
        assert repo.git("show", f"{commit}:outputs/o/{record['item']['a']}.txt")
    assert not list((repo.root / ".git" / "refs").rglob("*.lock"))
    assert not (repo.root / ".git" / "packed-refs.lock").exists()
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
    (repo.root / "started").unlink()
    result = repo.run("run")  # only the items not recorded run again
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == 40 - len(kept)
    assert len(repo.refs("refs/gitcache/sig/")) == 40
    assert not list((repo.root / ".git" / "objects" / "pack").glob("tmp_*"))  # the killed one's
    _plain_git(repo)


def test_a_sweeps_records_travel_by_push_and_fetch(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin = bare(tmp_path / "origin.git")
    repo = make({"gitcache.toml": _matrix(30), ".gitignore": "o/\n"})
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main")
    assert repo.run("run").exit_code == 0
    assert list((repo.root / ".git" / "objects" / "pack").glob("pack-*.idx"))
    assert repo.run("push", "origin").exit_code == 0
    other = clone(str(origin), tmp_path / "other")
    assert other.run("fetch", "origin").exit_code == 0
    result = other.run("run")
    assert result.exit_code == 0 and _ran(result.stderr) == 0, result.stderr
    assert "gitcache: 30 steps: 30 restored from git" in result.stderr
    assert other.read("o/17.txt") == "17\n"
    assert other.refs("refs/gitcache/sig/") == repo.refs("refs/gitcache/sig/")
    assert other.git("fsck", "--strict", "--no-progress") == ""


def test_an_item_failing_while_stored_drops_only_its_own_objects(
    make: Callable[..., Repo],
) -> None:
    # The records of items 0-19 wait (objects in an open pack, refs in the batch) when
    # item 20 cannot be recorded: its blobs go, theirs are written with their refs.
    run = (
        "mkdir -p o/{a} && echo {a} > o/{a}/f && "
        'if [ {a} = 20 ]; then echo bad > o/{a}/g && touch "o/{a}/z\\b"; fi'
    )
    toml = _matrix(25, run).replace("'o/{a}.txt'", "'o/{a}'")
    repo = make({"gitcache.toml": toml, ".gitignore": "o/\n"})
    result = repo.run("run", "-k")
    assert result.exit_code == 1
    assert "cannot record output 'o/20/z" in result.stderr
    assert _ran(result.stderr) == 24
    assert len(repo.refs("refs/gitcache/sig/")) == 24
    bad = repo.git("hash-object", "o/20/g").strip()
    gone = subprocess.run(["git", "cat-file", "-e", bad], cwd=repo.root, check=False)
    assert gone.returncode != 0
    _plain_git(repo)
    assert repo.git("show", "refs/gitcache/step/s:outputs/o/24/f") == "24\n"
    assert repo.git("show", "refs/gitcache/item/s/" + _item_id(7) + ":outputs/o/7/f") == "7\n"


def _item_id(a: int) -> str:
    from gitcache.sweeps import item_id

    return item_id({"a": a})


def test_one_job_runs_items_one_at_a_time_in_order(make: Callable[..., Repo]) -> None:
    """With one job commands never overlap, run in order, and each item is evaluated
    after the commands before it ended (an item reading what the previous one's
    command wrote beside its output sees it); each item's lines come together."""
    run = (
        "echo start {a} >> log; test ! -e busy || echo overlap >> log; touch busy; "
        "sleep 0.01; cat seen-{a} 2>/dev/null >> log; echo {a} > {outputs}; "
        "echo x > seen-$(({a} + 1)); rm busy; echo end {a} >> log"
    )
    repo = make({"gitcache.toml": _matrix(12, run), ".gitignore": "o/\nlog\nbusy\nseen-*\n"})
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == 12
    log = (repo.root / "log").read_text().split("\n")
    want = []
    for n in range(12):
        want += [f"start {n}"] + (["x"] if n else []) + [f"end {n}"]
    assert log == [*want, ""]
    assert len([r for r in repo.refs() if r.startswith("refs/gitcache/item/s/")]) == 12
    lines = [line.split(" [")[0] for line in result.stderr.splitlines() if "s[a=" in line]
    assert lines == [
        f"gitcache: s[a={n}]: {what}" for n in range(12) for what in ("running", "ran")
    ]
    again = repo.run("run")
    assert again.exit_code == 0 and _ran(again.stderr) == 0, again.stderr
    _plain_git(repo)


def test_one_job_stops_after_a_failed_item(make: Callable[..., Repo]) -> None:
    run = "echo {a} >> log; test {a} != 3 && echo {a} > {outputs}"
    repo = make({"gitcache.toml": _matrix(8, run), ".gitignore": "o/\nlog\n"})
    result = repo.run("run")
    assert result.exit_code != 0
    assert (repo.root / "log").read_text().split() == ["0", "1", "2", "3"]
    items = [r for r in repo.refs() if r.startswith("refs/gitcache/item/s/")]
    assert len(items) == 3
    _plain_git(repo)


@pytest.mark.parametrize(
    "detach",
    ["", "exec >/dev/null 2>&1; ", "exec >&- 2>&-; "],
    ids=["output-open", "output-redirected", "output-closed"],
)
def test_a_long_items_command_does_not_keep_the_records_before_it_unwritten(
    make: Callable[..., Repo], detach: str
) -> None:
    """Quick items' records wait in the batch; while item 5's command runs for long,
    they are written once the first has waited a second: a kill -9 then keeps them.
    Also when that command no longer writes to gitcache's pipes (`exec >log`)."""
    wait = f"if [ {{a}} = 5 ]; then {detach}touch started; while [ ! -e stop ]; do sleep 0.02; done; fi; "
    repo = make({"gitcache.toml": _matrix(8, wait + "echo {a} > {outputs}"), ".gitignore": "*\n"})
    proc = repo.spawn("run")
    try:
        deadline = time.monotonic() + 60
        while not (repo.root / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.02)
        started = time.monotonic()
        while len(repo.refs("refs/gitcache/sig/")) < 5:  # within about a second
            assert time.monotonic() < started + 10 and proc.poll() is None
            time.sleep(0.05)
        assert proc.poll() is None  # item 5's command still runs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    kept = repo.refs("refs/gitcache/sig/")
    items = sorted(
        json.loads(repo.git("show", f"{c}:record.json"))["item"]["a"] for c in kept.values()
    )
    assert items == [0, 1, 2, 3, 4]
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
    (repo.root / "stop").write_text("")
    (repo.root / "started").unlink()
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert _ran(result.stderr) == 3

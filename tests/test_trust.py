"""Fetched records are untrusted: hostile records, forged as git objects, are refused.

The attacker is a teammate with push access: they run the step once for a genuine
record (its signature and components), forge another record commit under the same
signature and force-push it with plain git. The victim clones and runs with
`--remote`; whatever the forgery says, nothing is written outside the worktree,
the command that runs is the victim's own, and the step runs instead of restoring.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitcache.gitrepo import MODE_FILE, MODE_LINK
from tests.helpers import Repo
from tests.remotes import bare, clone, forge

TOML = """\
[steps.make]
outputs = ["out"]
run = "echo ran >> counter.log && mkdir -p out && echo ok > out/data.txt"
"""


@dataclass
class Scene:
    attacker: Repo
    victim: Repo
    signature: str
    outside: Path  # a directory beside both worktrees that must stay empty

    def forge(self, outputs: dict[str, tuple[bytes, int]], **changes: Any) -> str:
        commit = forge(self.attacker, self.signature, outputs, **changes)
        self.attacker.git("push", "-q", "-f", "origin", "refs/gitcache/sig/*:refs/gitcache/sig/*")
        return commit

    def runs(self) -> int:
        path = self.victim.root / "counter.log"
        return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def scene(make: Callable[..., Repo], tmp_path: Path) -> Scene:
    origin = bare(tmp_path / "origin.git")
    attacker = make({"gitcache.toml": TOML, ".gitignore": "out/\ncounter.log\n"}, name="attacker")
    attacker.git("remote", "add", "origin", str(origin))
    attacker.git("push", "-q", "origin", "main")
    assert attacker.run("run").exit_code == 0
    (name,) = attacker.refs("refs/gitcache/sig/")
    victim = clone(str(origin), tmp_path / "victim")
    outside = tmp_path / "outside"
    outside.mkdir()
    return Scene(attacker, victim, name.rsplit("/", 1)[1], outside)


def assert_refused_and_ran(scene: Scene, forged: str, message: str) -> None:
    """The victim's run warns, runs its own command once, records its own outputs."""
    result = scene.victim.run("run", "--remote", "origin")
    assert result.exit_code == 0, result.stderr
    assert message in result.stderr
    assert "running the step instead" in result.stderr or "refused record" in result.stderr
    assert scene.runs() == 1
    assert scene.victim.read("out/data.txt") == "ok\n"
    own = scene.victim.refs("refs/gitcache/sig/")
    assert list(own.values()) != [forged] and len(own) == 1
    assert not list(scene.outside.iterdir())
    assert not (scene.victim.root.parent / "evil").exists()
    assert not (scene.victim.root / "pwned").exists()


# -- refused when fetched: record.json or its tree is invalid -------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../evil", "must be relative, without '.', '..'"),
        ("out/../../evil", "must be relative, without '.', '..'"),
        ("{outside}/evil", "must be relative"),
        (".git/hooks/post-checkout", "inside .git"),
        ("out/.GIT/config", "inside .git"),
        ("out/.git./config", "inside .git"),
    ],
)
def test_unsafe_paths_in_record_json_are_refused_on_fetch(
    scene: Scene, path: str, message: str
) -> None:
    path = path.format(outside=scene.outside)
    forged = scene.forge({path: (b"#!/bin/sh\ntouch pwned\n", 0o100755)})
    assert_refused_and_ran(scene, forged, message)


@pytest.mark.parametrize("step", ["fit..v2", "make.lock", "..", ".make", "make.", "-make"])
def test_a_step_name_git_refuses_as_a_ref_is_refused_on_fetch(scene: Scene, step: str) -> None:
    forged = scene.forge({"out/data.txt": (b"ok\n", MODE_FILE)}, record_changes={"step": step})
    assert_refused_and_ran(scene, forged, f"step: Value error, invalid step name {step!r}")
    assert set(scene.victim.refs("refs/gitcache/step/")) == {"refs/gitcache/step/make"}


def test_blob_ids_that_do_not_match_the_tree_are_refused(scene: Scene) -> None:
    other = scene.attacker.git("hash-object", "-w", "--stdin", input="evil\n").strip()
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE)}, output_changes={"out/data.txt": {"blob": other}}
    )
    assert_refused_and_ran(scene, forged, "outputs/out/data.txt does not match record.json")


def test_a_record_filed_under_another_signature_is_refused(scene: Scene) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE)}, record_changes={"signature": "f" * 64}
    )
    assert_refused_and_ran(scene, forged, "is filed under signature")


def test_components_that_do_not_hash_to_the_signature_are_refused(scene: Scene) -> None:
    victim_toml = scene.attacker.git("show", "HEAD:gitcache.toml")
    assert victim_toml == TOML
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE)},
        record_changes={"components": _components(scene) | {"code": "rm -rf /"}},
    )
    assert_refused_and_ran(scene, forged, "components do not hash to its signature")


def _components(scene: Scene) -> dict[str, Any]:
    import json

    shown = json.loads(scene.attacker.run("show", "make", "--json").stdout)
    return dict(shown["components"])


# -- valid records that restoring refuses -------------------------------------------------


def test_symlink_out_of_the_worktree_is_refused(scene: Scene) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE), "out/link": (b"../../outside", MODE_LINK)},
        record_changes={"command": "touch pwned"},
    )
    assert_refused_and_ran(scene, forged, "symlink to '../../outside' leaves the worktree")
    assert not (scene.victim.root / "out" / "link").exists()


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"out/" + "a" * 300: (b"x\n", MODE_FILE)}, "too long"),  # a name past NAME_MAX
        ({"out/" + ("d" * 100 + "/") * 45 + "x": (b"x\n", MODE_FILE)}, "too long"),  # PATH_MAX
        ({"out/link": (b"a/" * 3000, MODE_LINK)}, "must be shorter than 4096 bytes"),  # symlink(2)
        ({"out/link": (b"a/" * 2047 + b"a", MODE_LINK)}, "too long"),  # resolved: past PATH_MAX
    ],
    ids=["name", "path", "link-text", "link-resolved"],
)
def test_a_path_too_long_for_the_file_system_is_refused_before_any_write(
    scene: Scene, outputs: dict[str, tuple[bytes, int]], message: str
) -> None:
    """Valid in git, but lstat or open fails (ENAMETOOLONG): refused with the other
    checks, not an internal error that stops the run."""
    forged = scene.forge({"out/data.txt": (b"ok\n", MODE_FILE), **outputs})
    assert_refused_and_ran(scene, forged, message)
    assert sorted(os.listdir(scene.victim.root / "out")) == ["data.txt"]
    assert scene.victim.run("restore", "make").exit_code == 0


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "tree-listed"])
def test_a_tree_nested_deeper_than_pythons_recursion_limit_is_read(
    scene: Scene, listed: bool
) -> None:
    """outputs/out/deep/a/a/.../x, 1,200 trees deep (made with git mktree): fetch and
    run read it without a RecursionError. What a record.json that lists its outputs does
    not list is not written; one that leaves the list to the tree (a record of many
    outputs) has the deep file as an output, restored where it lies."""
    attacker = scene.attacker
    name = f"refs/gitcache/sig/{scene.signature[:2]}/{scene.signature}"
    legit = attacker.git("rev-parse", name).strip()

    def mktree(*lines: str) -> str:
        return attacker.git("mktree", input="".join(f"{line}\n" for line in lines)).strip()

    blob = attacker.git("rev-parse", f"{legit}:outputs/out/data.txt").strip()
    tree = mktree(f"100644 blob {blob}\tx")
    for _ in range(1200):
        tree = mktree(f"040000 tree {tree}\ta")
    out = mktree(f"100644 blob {blob}\tdata.txt", f"040000 tree {tree}\tdeep")
    outputs = mktree(f"040000 tree {out}\tout")
    record_json = attacker.git("rev-parse", f"{legit}:record.json").strip()
    if not listed:
        data = json.loads(attacker.git("show", f"{legit}:record.json"))
        del data["outputs"]
        data["chunked"] = []
        record_json = attacker.git("hash-object", "-w", "--stdin", input=json.dumps(data)).strip()
    top = mktree(f"100644 blob {record_json}\trecord.json", f"040000 tree {outputs}\toutputs")
    commit = attacker.git("commit-tree", top, "-p", f"{legit}^", "-m", "deep").strip()
    attacker.git("update-ref", name, commit)
    attacker.git("push", "-q", "-f", "origin", f"{name}:{name}")
    fetched = scene.victim.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    result = scene.victim.run("run")
    assert result.exit_code == 0 and "restored from git" in result.stderr, result.stderr
    out = scene.victim.root / "out"
    assert sorted(os.listdir(out)) == (["data.txt"] if listed else ["data.txt", "deep"])
    if not listed:
        deep = out / "deep" / "/".join(["a"] * 1200) / "x"
        assert deep.read_bytes() == (out / "data.txt").read_bytes()
        # pytest's clean-up of old temporary directories recurses per level: not this deep.
        subprocess.run(["rm", "-rf", str(out)], check=True)
    assert scene.runs() == 0


def test_symlink_into_git_is_refused(scene: Scene) -> None:
    forged = scene.forge({"out/link": (b"../.git/config", MODE_LINK)})
    assert_refused_and_ran(scene, forged, "symlink into .git")


def test_symlink_through_a_worktree_symlink_is_refused(scene: Scene) -> None:
    (scene.victim.root / "escape").symlink_to(scene.outside)
    forged = scene.forge({"out/link": (b"../escape/x", MODE_LINK)})
    assert_refused_and_ran(scene, forged, "leads out of the worktree")


def test_writing_through_a_symlink_the_record_makes_is_refused(scene: Scene) -> None:
    forged = scene.forge(
        {"out/d": (b"../..", MODE_LINK), "out/d/evil": (b"x", MODE_FILE)},
    )
    # The tree cannot hold both, so record.json and the tree disagree: refused on fetch
    # (Worktree.restore refuses such a pair too: tests/test_restore.py).
    assert_refused_and_ran(scene, forged, "outputs/out/d/evil does not match record.json")


def test_files_outside_the_declared_outputs_are_refused(scene: Scene) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE), "gitcache.toml": (b"[steps]\n", MODE_FILE)}
    )
    assert_refused_and_ran(scene, forged, "would write gitcache.toml, which is not an output")
    assert scene.victim.read("gitcache.toml") == TOML


def test_a_size_that_does_not_match_the_blob_is_refused(scene: Scene) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE)}, output_changes={"out/data.txt": {"size": 1}}
    )
    assert_refused_and_ran(scene, forged, "has 3 bytes, the record says 1")


def test_limits_cap_what_a_record_may_write(scene: Scene) -> None:
    with open(scene.victim.root / "gitcache.toml", "a") as handle:
        handle.write("\n[restore]\nmax_files = 2\nmax_bytes = 1000\n")
    many = {f"out/{n}": (b"x", MODE_FILE) for n in range(3)}
    forged = scene.forge(many)
    assert_refused_and_ran(
        scene,
        forged,
        "refusing to restore 3 files: more than restore.max_files = 2 "
        "(raise [restore] max_files in gitcache.toml if this is expected); running the step",
    )


def test_byte_limit(scene: Scene) -> None:
    with open(scene.victim.root / "gitcache.toml", "a") as handle:
        handle.write("\n[restore]\nmax_bytes = 1000\n")
    forged = scene.forge({"out/big": (b"x" * 1001, MODE_FILE)})
    assert_refused_and_ran(
        scene, forged, "refusing to restore 1001 bytes: more than restore.max_bytes = 1000"
    )


def test_a_genuine_record_is_restored(scene: Scene) -> None:
    assert scene.attacker.run("push").exit_code == 0
    result = scene.victim.run("run", "--remote", "origin")
    assert result.exit_code == 0 and "restored from git [" in result.stderr
    assert scene.runs() == 0 and scene.victim.read("out/data.txt") == "ok\n"


@pytest.mark.parametrize("started", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_start_time_at_the_calendars_edge_is_shown_as_it_is(scene: Scene, started: str) -> None:
    """Valid ISO text whose local time falls outside the calendar: log, show and gc
    show the text instead of failing with an internal error."""
    scene.forge({"out/data.txt": (b"ok\n", MODE_FILE)}, record_changes={"started_at": started})
    assert scene.victim.run("fetch").exit_code == 0
    for args in (["log"], ["gc", "--all", "--keep", "0", "-n"]):
        result = scene.victim.run(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert started in result.stdout, (args, result.stdout)
    shown = scene.victim.run("show", scene.signature)
    assert shown.exit_code == 0 and started in shown.stdout, shown.stderr


# -- records that arrived by plain `git fetch`, without gitcache's validation -------------


def plain_fetch(scene: Scene) -> None:
    scene.victim.git("fetch", "-q", "origin", "+refs/gitcache/sig/*:refs/gitcache/sig/*")


def test_plain_fetched_record_of_another_signature_is_a_miss_and_replaced(
    scene: Scene,
) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE)}, record_changes={"signature": "f" * 64}
    )
    plain_fetch(scene)
    name = f"refs/gitcache/sig/{scene.signature[:2]}/{scene.signature}"
    assert scene.victim.refs(name) == {name: forged}
    result = scene.victim.run("run")
    assert result.exit_code == 0
    assert "it is for signature ffffffffffff" in result.stderr
    assert scene.runs() == 1
    assert scene.victim.refs(name) != {name: forged}  # the victim's own record replaced it
    assert scene.victim.run("run").exit_code == 0 and scene.runs() == 1


def test_plain_fetched_record_is_still_vetted_before_restoring(scene: Scene) -> None:
    forged = scene.forge(
        {"out/data.txt": (b"ok\n", MODE_FILE), "gitcache.toml": (b"[steps]\n", MODE_FILE)},
        record_changes={"command": "touch pwned"},
    )
    plain_fetch(scene)
    result = scene.victim.run("run")
    assert result.exit_code == 0
    assert "would write gitcache.toml, which is not an output of step 'make'" in result.stderr
    assert scene.runs() == 1 and scene.victim.read("gitcache.toml") == TOML
    assert not (scene.victim.root / "pwned").exists()
    assert scene.victim.refs("refs/gitcache/sig/") != {
        f"refs/gitcache/sig/{scene.signature[:2]}/{scene.signature}": forged
    }


class Quiet:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def step_started(self, step: str, action: str) -> None:
        pass

    def step_finished(self, result: object) -> None:
        pass

    def output(self, step: str, stream: str, data: bytes) -> None:
        pass

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def test_a_record_refused_under_the_signature_lock_runs_the_step_there(scene: Scene) -> None:
    """The record appears while the step waits for its lock (as if another process made
    it) and is refused: the step runs under the lock it holds, without waiting on itself."""
    import threading

    from gitcache.engine import Engine, RunOptions
    from gitcache.project import Project

    scene.forge({"out/data.txt": (b"ok\n", MODE_FILE), "gitcache.toml": (b"x", MODE_FILE)})

    def sneaky(signature: str) -> bool:
        plain_fetch(scene)
        return False  # "nothing found": the engine goes on to take the lock and look again

    project = Project.open(scene.victim.root)
    reporter = Quiet()
    results = []
    engine = Engine(project, RunOptions(on_miss=sneaky), reporter)
    worker = threading.Thread(target=lambda: results.append(engine.run([])), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert results, "the run did not finish (waiting on its own lock?)"
    assert [r.outcome for r in results[0].results] == ["ran"]
    assert any("not an output of step 'make'" in w for w in reporter.warnings)
    assert scene.runs() == 1 and scene.victim.read("gitcache.toml") == TOML

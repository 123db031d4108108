"""A fetched record whose blobs are too big to be read whole into memory.

record.json is read and parsed whole by fetch, log, run and restore: a record.json
over RECORD_JSON_MAX (64 MiB: 300 MB of whitespace used to cost ~666 MB of memory) is
refused from its object's header, before it is read. So is a symlink "text" of
PATH_MAX bytes or more (refused by record.json's size, before its blob is read). A
refused fetched record never becomes a local ref; the others of the same fetch still
come through.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gitcache.errors import StepFailed
from gitcache.gitrepo import MODE_FILE, MODE_LINK, GitRepo, RefUpdate, TreeEntry
from gitcache.store import RecordStore, sig_ref
from tests import records
from tests.adversarial.chain import IGNORE, TOML, with_origin
from tests.helpers import Repo, runs
from tests.remotes import clone, forge

RECORD_JSON_MAX = 64 << 20  # gitcache.record.RECORD_JSON_MAX, as docs/format.md states


def sig_of(repo: Repo, step: str) -> str:
    """The signature of the step's latest record (its step ref: forging moves only sig/)."""
    gr = GitRepo.discover(repo.root)
    commit = gr.ref_target(f"refs/gitcache/step/{step}")
    assert commit is not None
    data = gr.read_commit_file(commit, "record.json")
    assert data is not None
    return str(json.loads(data)["signature"])


def swap_tree_entries(
    repo: Repo, signature: str, change: Callable[[GitRepo], list[TreeEntry]]
) -> str:
    """The record of `signature` made again with extra/replaced root entries; ref moved."""
    gr = GitRepo.discover(repo.root)
    name = sig_ref(signature)
    legit = gr.ref_target(name)
    assert legit is not None
    extra = change(gr)
    replaced = {e.path for e in extra}
    entries = [e for e in gr.walk_tree(gr.commit_tree(legit)) if e.path not in replaced]
    tree = gr.write_tree([*entries, *extra])
    commit = gr.write_commit(tree, gr.commit_parents(legit), "forged\n")
    gr.update_refs([RefUpdate(name, commit)])
    return commit


def pad_record_json(repo: Repo, signature: str) -> str:
    """The record of `signature` with its record.json padded with whitespace (still valid
    JSON, and the same record) to just over RECORD_JSON_MAX."""

    def padded(gr: GitRepo) -> list[TreeEntry]:
        legit = gr.ref_target(sig_ref(signature))
        assert legit is not None
        data = gr.read_commit_file(legit, "record.json")
        assert data is not None
        data += b" " * (RECORD_JSON_MAX + 1 - len(data))
        return [TreeEntry("record.json", gr.write_blob(data), MODE_FILE)]

    return swap_tree_entries(repo, signature, padded)


def origin_with(
    make: Callable[..., Repo], tmp_path: Path, forge_it: Callable[[Repo], str]
) -> tuple[Repo, str]:
    """`a` recorded both steps, forged `make`'s record (forge_it) and pushed them all."""
    _origin, a = with_origin(make, tmp_path)
    assert a.run("run").exit_code == 0 and runs(a) == 2
    forged = forge_it(a)
    assert a.run("push").exit_code == 0
    return a, forged


def assert_refused_on_fetch(
    make: Callable[..., Repo], tmp_path: Path, forge_it: Callable[[Repo], str], why: str
) -> Repo:
    a, forged = origin_with(make, tmp_path, forge_it)
    make_sig, more_sig = sig_of(a, "make"), sig_of(a, "more")
    b = clone(str(tmp_path / "origin.git"), tmp_path / "b")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert "Traceback" not in fetched.stderr
    assert f"gitcache: warning: refused {sig_ref(make_sig)} from origin: " in fetched.stderr
    assert why in fetched.stderr, fetched.stderr
    assert "1 new record" in fetched.stderr  # `more`'s still comes through
    local = {n: c for n, c in b.refs().items() if not n.startswith("refs/gitcache/remotes/")}
    assert sig_ref(make_sig) not in local and forged not in local.values()
    assert local.get(sig_ref(more_sig)) == a.refs()[sig_ref(more_sig)]
    return b


def test_a_fetched_record_json_over_the_limit_is_refused_unread(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    b = assert_refused_on_fetch(
        make,
        tmp_path,
        lambda a: pad_record_json(a, sig_of(a, "make")),
        f"its record.json is {RECORD_JSON_MAX + 1:,} bytes, more than the 64 MiB gitcache reads",
    )
    ran = b.run("run")  # make runs (its record was refused); more's record is used
    assert ran.exit_code == 0, ran.stderr
    assert runs(b) == 1


def test_a_record_json_over_the_limit_already_here_is_ignored_by_log_and_run(
    make: Callable[..., Repo],
) -> None:
    """As a plain `git fetch` could bring it: every reader refuses it from the header."""
    repo = make({"gitcache.toml": TOML, ".gitignore": IGNORE})
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    forged = pad_record_json(repo, sig_of(repo, "make"))
    listed = repo.run("log")
    assert listed.exit_code == 0, listed.stderr
    assert f"ignoring unreadable record: record {forged[:12]}: its record.json is" in listed.stderr
    assert "more" in listed.stdout and "make" not in listed.stdout
    (repo.root / "out/data.txt").unlink()
    ran = repo.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert "64 MiB gitcache reads" in ran.stderr and runs(repo) == 3  # make ran again
    shown = repo.run("show", forged)
    assert shown.exit_code == 1 and shown.stderr.startswith("gitcache: error: record ")
    assert "its record.json is" in shown.stderr and "Traceback" not in shown.stderr


def test_a_fetched_symlink_of_path_max_bytes_or_more_is_refused_unread(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    def long_link(a: Repo) -> str:
        return forge(a, sig_of(a, "make"), {"out/data.txt": (b"x" * 4096, MODE_LINK)})

    assert_refused_on_fetch(make, tmp_path, long_link, "must be shorter than 4096 bytes (PATH_MAX)")


def test_a_record_json_over_the_limit_is_never_written(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    """What gitcache would refuse to read back is not recorded (no objects, no refs)."""
    repo = make({"README": "x"})
    gr = GitRepo.discover(repo.root)
    new = records.new_record(gr, tmp_path, "big", "ab" + "0" * 62)
    huge = replace(new, record=dataclasses.replace(new.record, command="x" * RECORD_JSON_MAX))
    with pytest.raises(StepFailed, match=r"step big: its record.json would be [\d,]+ bytes, more"):
        RecordStore(gr).write(huge, gr.head_commit())
    assert repo.refs() == {}


def deepen_record_json(repo: Repo, signature: str, depth: int = 100_000) -> str:
    """The record of `signature` with a parameter nested `depth` lists deep in its
    record.json: valid JSON, deeper than Python's json or pydantic's parser will go."""

    def deepened(gr: GitRepo) -> list[TreeEntry]:
        legit = gr.ref_target(sig_ref(signature))
        assert legit is not None
        data = gr.read_commit_file(legit, "record.json")
        assert data is not None
        doc = json.loads(data)
        doc["components"]["params"]["deep"] = "DEEP"
        text = json.dumps(doc).replace('"DEEP"', "[" * depth + "]" * depth)
        return [TreeEntry("record.json", gr.write_blob(text.encode()), MODE_FILE)]

    return swap_tree_entries(repo, signature, deepened)


def test_a_record_json_nested_too_deeply_is_refused_not_a_crash(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    """json.loads raised RecursionError (an internal error) in log, run and show, and on
    fetch; now each refuses the record with pydantic's message, as any defect."""
    repo = make({"gitcache.toml": TOML, ".gitignore": IGNORE})
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    forged = deepen_record_json(repo, sig_of(repo, "make"))
    listed = repo.run("log")
    assert listed.exit_code == 0, listed.stderr
    assert "Traceback" not in listed.stderr and "internal error" not in listed.stderr
    assert "ignoring unreadable record: " in listed.stderr
    assert f"record {forged[:12]}" in listed.stderr and "recursion limit" in listed.stderr
    (repo.root / "out/data.txt").unlink()
    ran = repo.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert "recursion limit" in ran.stderr and runs(repo) == 3  # make ran again
    shown = repo.run("show", forged)
    assert shown.exit_code == 1 and "recursion limit" in shown.stderr
    assert "Traceback" not in shown.stderr and "internal error" not in shown.stderr


def test_a_fetched_record_json_nested_too_deeply_is_refused(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    b = assert_refused_on_fetch(
        make, tmp_path, lambda a: deepen_record_json(a, sig_of(a, "make")), "recursion limit"
    )
    assert b.run("run").exit_code == 0 and runs(b) == 1

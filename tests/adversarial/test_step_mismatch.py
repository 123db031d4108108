"""A record whose record.json names another step than the one whose signature it is
filed under.

The step's name is not part of the signature (docs/format.md), so a forged record can
keep a signature and its components and say any step: it would then be listed under
that step by `gitcache log`, counted as that step's by `gc`, and its blobs taken as
that step's recorded content. A step never uses a record of another step (a warning,
and the step runs; its record replaces the forged one), and fetch refuses one whose
signature's record here names another step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gitcache.gitrepo import MODE_FILE, GitRepo
from gitcache.store import sig_ref
from tests.adversarial.chain import IGNORE, TOML, with_origin
from tests.helpers import Repo, runs
from tests.remotes import clone, forge


def sig_of(repo: Repo, step: str) -> str:
    gr = GitRepo.discover(repo.root)
    commit = gr.ref_target(f"refs/gitcache/step/{step}")
    assert commit is not None
    return str(json.loads(gr.read_commit_file(commit, "record.json") or b"")["signature"])


def forge_as_more(repo: Repo) -> tuple[str, str]:
    """`make`'s record, the same in all but its step, which says `more`: (sig, commit)."""
    signature = sig_of(repo, "make")
    forged = forge(
        repo, signature, {"out/data.txt": (b"made\n", MODE_FILE)}, record_changes={"step": "more"}
    )
    return signature, forged


def listed_steps(repo: Repo) -> list[str]:
    shown = repo.run("log")
    assert shown.exit_code == 0, shown.stderr
    return sorted(line.split()[0] for line in shown.stdout.splitlines() if line.strip())


def test_a_record_of_another_step_is_not_used_and_is_replaced(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML, ".gitignore": IGNORE})
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    signature, forged = forge_as_more(repo)
    (repo.root / "out/data.txt").unlink()
    ran = repo.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert (
        f"ignoring record {forged[:12]}: it is filed under the signature {signature[:12]} "
        "of step 'make', but its record.json says step 'more'"
    ) in ran.stderr
    assert runs(repo) == 3 and repo.read("out/data.txt") == "made\n"  # ran, not restored
    assert repo.refs()[sig_ref(signature)] != forged  # replaced by the run's record
    assert listed_steps(repo) == ["make", "more"]


def test_fetch_refuses_a_record_whose_signature_here_is_another_steps(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    origin, a = with_origin(make, tmp_path)
    assert a.run("run").exit_code == 0 and a.run("push").exit_code == 0
    b = clone(str(origin), tmp_path / "b")
    assert b.run("fetch").exit_code == 0 and listed_steps(b) == ["make", "more"]

    signature, forged = forge_as_more(a)  # then force-pushed over the remote's record
    a.git("push", "-q", "-f", "origin", f"{sig_ref(signature)}:{sig_ref(signature)}")
    fetched = b.run("fetch")
    assert fetched.exit_code == 0, fetched.stderr
    assert (
        f"gitcache: warning: refused {sig_ref(signature)} from origin: record {forged[:12]} "
        f"is filed under the signature {signature[:12]} of step 'make', but its record.json "
        "says step 'more'"
    ) in fetched.stderr
    assert forged not in {c for n, c in b.refs().items() if "/remotes/" not in n}
    assert listed_steps(b) == ["make", "more"]  # not listed as a second `more`

    # A clone that has no record of the signature cannot tell from the record alone:
    # the step that looks the signature up does not use it, and runs.
    c = clone(str(origin), tmp_path / "c")
    assert c.run("fetch").exit_code == 0
    ran = c.run("run")
    assert ran.exit_code == 0, ran.stderr
    assert f"ignoring record {forged[:12]}" in ran.stderr and runs(c) == 1
    assert c.refs()[sig_ref(signature)] != forged

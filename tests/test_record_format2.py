"""Records of format 2 (record.json listing every output) are still read and restored.

tests/fixtures/format2-record.bundle was written by gitcache's main at 3bfa17e
(tests/fixtures/README.md): a repository and one record of step `make`, with an output
stored in chunks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gitcache.gitrepo import GitRepo
from gitcache.store import RecordStore
from tests.helpers import Repo, clone_bundle

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "format2-record.bundle"
RECORD = "6f6c6dbaa120115a38fdff6bff6dd335140a25ab"
BIG = 17_000_000


def _clone(tmp_path: Path) -> Repo:
    return clone_bundle(BUNDLE, tmp_path / "clone")


def test_format2_record_loads(tmp_path: Path) -> None:
    repo = _clone(tmp_path)
    raw = json.loads(repo.git("show", f"{RECORD}:record.json"))
    assert raw["format"] == 2 and len(raw["outputs"]) == 4 and "chunked" not in raw
    stored = RecordStore(GitRepo.discover(repo.root)).load(RECORD)
    record = stored.record
    assert record.format == 2
    assert [(o.path, o.mode, o.chunks) for o in record.outputs] == [
        ("out/a.txt", 0o100644, None),
        ("out/big.bin", 0o100644, 3),
        ("out/link", 0o120000, None),
        ("out/sub/b.bin", 0o100755, None),
    ]
    assert [o.size for o in record.outputs] == [6, BIG, 5, 100]
    assert len(stored.chunks["out/big.bin"]) == 3


def test_format2_record_restores_and_is_a_hit(tmp_path: Path) -> None:
    repo = _clone(tmp_path)
    result = repo.run("run", "make")  # nothing in the worktree: restored, not run
    assert result.exit_code == 0, result.stderr
    assert "restored" in result.stderr
    assert repo.read("out/a.txt") == "hello\n"
    assert repo.read("out/sub/b.bin") == "x" * 100
    assert (repo.root / "out/sub/b.bin").stat().st_mode & 0o111
    assert (repo.root / "out/link").readlink() == Path("a.txt")
    assert repo.read("out/big.bin") == "z" * BIG
    assert repo.run("run", "-s", "assert", "make").exit_code == 0
    assert repo.run("show", "make", "--stdout").stdout == "made\n"
    # Its step recorded again (-s force) writes format 3: the same list, a new number.
    assert repo.run("run", "-s", "force", "make").exit_code == 0
    commit = repo.refs()["refs/gitcache/step/make"]
    assert commit != RECORD
    again = json.loads(repo.git("show", f"{commit}:record.json"))
    before = json.loads(repo.git("show", f"{RECORD}:record.json"))
    assert again["format"] == 3 and again["outputs"] == before["outputs"]
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=repo.root, capture_output=True)
    assert fsck.returncode == 0


def test_docs_example_is_this_record_rewritten_in_format_3(tmp_path: Path) -> None:
    """docs/format.md ("Outputs in the tree") shows this record in format 3: the same
    step recorded again gives exactly that tree and that `outputs` list."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text()
    example = doc.split("### Outputs in the tree (record format 3)")[1].split("```sh\n")[2]
    shown_json, shown_tree = example.split("$ git ls-tree -r --long refs/gitcache/step/make\n")
    repo = _clone(tmp_path)
    assert repo.run("run", "-s", "force", "make").exit_code == 0
    tree = repo.git("ls-tree", "-r", "--long", "refs/gitcache/step/make").splitlines()
    assert [t for t in tree if not t.endswith("\trecord.json")] == [
        line for line in shown_tree.splitlines() if "\t" in line and "record.json" not in line
    ]
    data = json.loads(repo.git("show", "refs/gitcache/step/make:record.json"))
    compact = "".join(shown_json.split())
    assert '"outputs":' + json.dumps(data["outputs"], separators=(",", ":")) in compact
    assert f'"signature": "{data["signature"]}"' in shown_json
    assert f'"source_commit": "{data["source_commit"]}"' in shown_json

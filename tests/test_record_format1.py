"""Records of format 1 (written before big files were chunked) are still read and restored.

tests/fixtures/format1-record.bundle was written by gitcache's main at f63c948
(tests/fixtures/README.md): a repository and one record of step `make`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gitcache.gitrepo import GitRepo
from gitcache.store import RecordStore
from tests.helpers import Repo, clone_bundle

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "format1-record.bundle"
RECORD = "918cee6ca1b00f2b6df8633ffb4b9a810ed5399a"


def _clone(tmp_path: Path) -> Repo:
    return clone_bundle(BUNDLE, tmp_path / "clone")


def test_format1_record_loads(tmp_path: Path) -> None:
    repo = _clone(tmp_path)
    stored = RecordStore(GitRepo.discover(repo.root)).load(RECORD)
    assert stored.record.format == 1
    assert [o.path for o in stored.record.outputs] == ["out/a.txt", "out/link", "out/sub/b.bin"]
    assert all(o.chunks is None for o in stored.record.outputs)
    assert stored.chunks == {}
    raw = json.loads(repo.git("show", f"{RECORD}:record.json"))
    assert "chunks" not in raw["outputs"][0]


def test_format1_record_restores_and_is_a_hit(tmp_path: Path) -> None:
    repo = _clone(tmp_path)
    result = repo.run("restore", RECORD[:12])
    assert result.exit_code == 0, result.stderr
    assert repo.read("out/a.txt") == "hello\n"
    assert repo.read("out/sub/b.bin") == "x" * 100
    assert (repo.root / "out/link").readlink() == Path("a.txt")
    result = repo.run("run", "-s", "assert", "make")  # same signature today: a hit
    assert result.exit_code == 0, result.stderr
    (repo.root / "out/sub/b.bin").unlink()
    result = repo.run("run", "make")
    assert result.exit_code == 0, result.stderr
    assert "restored" in result.stderr and repo.read("out/sub/b.bin") == "x" * 100
    assert repo.run("show", "make", "--stdout").stdout == "made\n"
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=repo.root, capture_output=True)
    assert fsck.returncode == 0

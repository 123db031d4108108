"""A damaged object (a flipped byte in a pack) is the repository's problem, said in one
line: never an internal error, never wrong bytes in the worktree."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Repo


def _flip(path: Path, at: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def _damage(repo: Repo, oid: str) -> None:
    """Flip a byte of `oid`'s zlib stream (its check, at its end): loose or packed."""
    loose = repo.root / ".git/objects" / oid[:2] / oid[2:]
    if loose.exists():
        _flip(loose, loose.stat().st_size - 2)
        return
    for idx in (repo.root / ".git/objects/pack").glob("*.idx"):
        for line in repo.git("verify-pack", "-v", str(idx)).splitlines():
            fields = line.split()
            if fields and fields[0] == oid:
                in_pack, offset = int(fields[3]), int(fields[4])
                _flip(idx.with_suffix(".pack"), offset + in_pack - 2)
                return
    raise AssertionError(f"{oid} is in no pack")


@pytest.mark.parametrize("count", [3, 100])  # blobs read by libgit2, or from the packs
def test_a_damaged_output_blob_is_one_line_and_nothing_wrong_is_written(
    make: Callable[..., Repo], count: int
) -> None:
    toml = f"""\
        [steps.many]
        outputs = ["out"]
        run = "mkdir -p out && for i in $(seq 1 {count}); do echo file $i > out/f$i; done"
        """
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\n"})
    assert repo.process("run").returncode == 0
    victim = f"f{count // 2}"
    _damage(repo, repo.blob(f"out/{victim}"))
    shutil.rmtree(repo.root / "out")

    done = repo.process("restore", "many")

    # A damaged loose object's header cannot be read either: refused as missing (exit 1)
    # by the checks before any write; a packed one's header can, its content cannot.
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr.startswith("gitcache: error: ") and done.stderr.count("\n") == 1
    if count >= 64:
        assert done.returncode == 2
        assert "cannot be read (incorrect data check): the repository is damaged" in done.stderr
    out = repo.root / "out"
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert victim not in written
    for name in written:  # what was restored before the damaged blob is the record's
        assert not name.startswith(".gitcache-tmp-")
        assert (out / name).read_text() == f"file {name[1:]}\n"


def test_a_damaged_record_commit_is_one_line(make: Callable[..., Repo]) -> None:
    toml = """\
        [steps.one]
        outputs = ["out.txt"]
        run = "echo one > out.txt"
        """
    repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\n"})
    assert repo.process("run").returncode == 0
    _damage(repo, repo.refs()["refs/gitcache/step/one"])
    (repo.root / "out.txt").unlink()
    done = repo.process("restore", "one")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert "cannot be read" in done.stderr
    assert not (repo.root / "out.txt").exists()


@pytest.mark.parametrize("big", [True, False])  # a chunk, a small whole file
def test_a_truncated_loose_object_is_refused_not_a_hang(
    make: Callable[..., Repo], big: bool
) -> None:
    # libgit2 never returns from reading a loose object that is cut short: the restore
    # once spun forever on a chunk truncated by an interrupted copy.
    data = "os.urandom(20 << 20)" if big else "os.urandom(3000)"
    gen = f"import os\nos.makedirs('out', exist_ok=True)\nopen('out/f.bin', 'wb').write({data})\n"
    toml = """\
        [steps.one]
        inputs = ["gen.py"]
        outputs = ["out/f.bin"]
        run = "python3 gen.py"
        """
    repo = make({"gitcache.toml": toml, "gen.py": gen, ".gitignore": "out/\n"})
    ran = repo.process("run")
    assert ran.returncode == 0, ran.stderr
    objects = repo.root / ".git/objects"
    oid = repo.blob("out/f.bin")
    victim = objects / oid[:2] / oid[2:]  # the file's blob
    if big:  # one of its chunks
        victim = max(objects.glob("??/*"), key=lambda p: p.stat().st_size)
    assert victim.exists()
    victim.chmod(0o644)
    os.truncate(victim, victim.stat().st_size // 2)
    (repo.root / "out/f.bin").unlink()

    done = repo.process("restore", "one", timeout=30)

    assert done.returncode == 2, done.stderr
    assert "is truncated: the repository is damaged" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(repo.root / "out") == []

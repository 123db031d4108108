"""Big outputs end to end, as processes: bounded memory, `git fsck` clean (slow).

Peak RSS is read with getrusage(RUSAGE_CHILDREN) in a small wrapper process whose
only child is `gitcache run` (and the step's `head`), so no other process of the
test session counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.helpers import Repo, gitcache_env

pytestmark = pytest.mark.slow

MAX_RSS_MIB = 100

_WRAPPER = """\
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _run_measured(repo: Repo, *args: str) -> tuple[int, float, str]:
    """(exit status, peak RSS in MiB, stderr) of `gitcache ARGS` as a process."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, sys.executable, "-m", "gitcache", *args],
        cwd=repo.root,
        env=gitcache_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    status, rss_kib = done.stdout.split()
    return int(status), int(rss_kib) / 1024, done.stderr


def _fsck(repo: Repo) -> None:
    done = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=repo.root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_storing_and_restoring_500_mb_stays_under_100_mb_of_memory(
    make: Callable[..., Repo],
) -> None:
    repo = make(
        {
            "gitcache.toml": """\
            [steps.big]
            outputs = ["big.bin"]
            run = "head -c 500000000 /dev/urandom > big.bin"
            """,
            ".gitignore": "big.bin\n",
        }
    )
    status, rss, err = _run_measured(repo, "run")
    assert status == 0, err
    assert "ran" in err
    assert rss <= MAX_RSS_MIB, f"storing 500 MB took {rss:.0f} MiB"
    blob = repo.blob("big.bin")
    os.unlink(repo.root / "big.bin")
    status, rss, err = _run_measured(repo, "run")
    assert status == 0, err
    assert "restored" in err
    assert rss <= MAX_RSS_MIB, f"restoring 500 MB took {rss:.0f} MiB"
    assert repo.blob("big.bin") == blob
    _fsck(repo)


def test_fsck_is_clean_after_a_100_mb_file_and_5000_files(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": """\
            [steps.big]
            outputs = ["big.bin"]
            run = "head -c 100000000 /dev/urandom > big.bin"

            [steps.many]
            outputs = ["many"]
            run = "mkdir -p many && cd many && for d in 0 1 2 3 4; do mkdir $d; seq -f \\"$d/%g\\" 1 1000 | while read f; do echo $f > $f; done; done"
            """,
            ".gitignore": "big.bin\nmany/\n",
        }
    )
    status, _rss, err = _run_measured(repo, "run")
    assert status == 0, err
    packs = list((repo.root / ".git" / "objects" / "pack").glob("pack-*.idx"))
    assert len(packs) == 1  # the 5,000 small files: one pack, not 5,000 loose objects
    verify = subprocess.run(
        ["git", "verify-pack", str(packs[0])], cwd=repo.root, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    _fsck(repo)
    blobs = {p: repo.blob(p) for p in ("big.bin", "many/3/777")}
    os.unlink(repo.root / "big.bin")
    subprocess.run(["rm", "-rf", str(repo.root / "many")], check=True)
    status, _rss, err = _run_measured(repo, "run")
    assert status == 0, err
    assert err.count("restored") >= 2
    assert {p: repo.blob(p) for p in blobs} == blobs
    assert len(list((repo.root / "many").rglob("*"))) == 5000 + 5
    _fsck(repo)

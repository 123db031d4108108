from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers import Repo, gitcache_env


def test_init_writes_a_starter_that_runs(make: Callable[..., Repo]) -> None:
    repo = make({"README": "x"})
    result = repo.run("init")
    assert result.exit_code == 0
    assert (repo.root / "gitcache.toml").exists()
    again = repo.run("init")
    assert "exists" in again.stdout
    run = repo.run("run")
    assert run.exit_code == 0, run.stderr
    assert repo.read("temp/size.txt").strip() == "512000"


def test_demo_narrates_the_tutorial(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "gitcache", "demo", str(target)],
        capture_output=True,
        text=True,
        env=gitcache_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "2 steps: 2 ran" in out
    assert out.count("2 steps: 2 up to date") == 2  # unchanged, then only comments added
    assert "2 steps: 2 restored from git" in out
    assert "1 up to date, 1 restored from git" in out  # a deleted output comes back
    assert (target / "temp" / "size.txt").read_text().strip() == "512000"

"""The progress line: drawn on a terminal only."""

from __future__ import annotations

import pytest

from gitcache.cli import output
from tests.helpers import Repo


def test_no_progress_line_when_not_a_terminal(chain: Repo) -> None:
    result = chain.run("run")
    assert "\x1b[K" not in result.stderr and "\r" not in result.stderr


def test_progress_line_on_a_terminal(chain: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_tty", lambda: True)
    result = chain.run("run")
    assert result.exit_code == 0
    assert "[0/2] running: make" in result.stderr
    assert "[1/2] running: count" in result.stderr
    assert result.stderr.rstrip().endswith("gitcache: 2 steps: 2 ran")


def test_quiet_never_draws_progress(chain: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "_tty", lambda: True)
    result = chain.run("run", "-q")
    assert "running:" not in result.stderr


def test_storing_and_restoring_many_files_show_progress(
    make, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    repo = make(
        {
            "gitcache.toml": '[steps.many]\noutputs = ["many"]\n'
            'run = "mkdir -p many && for i in $(seq 300); do echo $i > many/f$i; done"\n'
        }
    )
    monkeypatch.setattr(output, "_tty", lambda: True)
    stored = repo.run("run")
    assert stored.exit_code == 0
    assert "storing many: 0/300 files" in stored.stderr
    for path in (repo.root / "many").iterdir():
        path.unlink()
    restored = repo.run("run")
    assert "restoring many: 0/300 files" in restored.stderr
    assert len(list((repo.root / "many").iterdir())) == 300

"""The progress line: drawn on a terminal only."""

from __future__ import annotations

import re

import pytest

from gitcache import transfer
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
    monkeypatch.setattr(transfer, "QUIET_S", 0.0)  # shown at once, not after a second
    stored = repo.run("run")
    assert stored.exit_code == 0
    assert re.search(r"storing many: \d+/300 files, [\d.]+ MB", stored.stderr)
    for path in (repo.root / "many").iterdir():
        path.unlink()
    restored = repo.run("run")
    assert re.search(r"restoring many: \d+/300 files, [\d.]+/0.0 MB", restored.stderr)
    assert len(list((repo.root / "many").iterdir())) == 300


def test_a_transfer_shorter_than_a_second_draws_nothing(
    make, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    repo = make({"gitcache.toml": '[steps.one]\noutputs = ["one"]\nrun = "echo 1 > one"\n'})
    monkeypatch.setattr(output, "_tty", lambda: True)
    assert "storing one:" not in repo.run("run").stderr
    (repo.root / "one").unlink()
    result = repo.run("run")
    assert result.exit_code == 0 and "restored from git" in result.stderr
    assert "restoring one:" not in result.stderr and "\r" not in result.stderr


@pytest.mark.parametrize("command", ["run", "restore"])
def test_one_big_file_shows_its_bytes_as_they_go(
    make, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:  # type: ignore[no-untyped-def]
    # 40 MB: stored in chunks, so the count moves within the one file.
    repo = make(
        {
            "gitcache.toml": '[steps.big]\noutputs = ["big.bin"]\n'
            'run = "head -c 40000000 /dev/urandom > big.bin"\n'
        }
    )
    monkeypatch.setattr(output, "_tty", lambda: True)
    monkeypatch.setattr(transfer, "QUIET_S", 0.0)
    stored = repo.run("run")
    assert stored.exit_code == 0
    shown = re.findall(r"storing big: 0/1 files, ([\d.]+) MB", stored.stderr)
    assert shown and float(shown[0]) < 40.0  # drawn before the file was all stored
    (repo.root / "big.bin").unlink()
    restored = repo.run(command, *(["big"] if command == "restore" else []))
    assert restored.exit_code == 0, restored.stderr
    shown = re.findall(r"restoring big: 0/1 files, ([\d.]+)/40.0 MB", restored.stderr)
    assert shown and float(shown[0]) < 40.0
    assert (repo.root / "big.bin").stat().st_size == 40_000_000

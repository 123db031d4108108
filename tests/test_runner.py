"""runner.execute: capture goes on when the place output is shown to is gone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gitcache.runner import execute


def test_a_sink_that_fails_stops_showing_but_not_capturing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    shown: list[bytes] = []

    def sink(_stream: str, data: bytes) -> None:
        shown.append(data)
        raise ValueError("I/O operation on closed file")  # gitcache's stdout went away

    command = "for i in 1 2 3; do echo line$i; sleep 0.05; done"
    done = execute(["/bin/sh", "-c", command], tmp_path, tmp_path / "scratch", sink)
    assert done.exit_status == 0
    assert done.logs["stdout"].read_text() == "line1\nline2\nline3\n"
    assert len(shown) == 1  # shown until the first failure, then no more
    assert failures == []


def _quiet(_stream: str, _data: bytes) -> None:
    pass


def test_a_background_process_holding_the_output_is_waited_for_and_told(
    tmp_path: Path,
) -> None:
    """`job &` keeps the output open after the shell exits: the job may still be writing
    the step's outputs, so it is waited for, and the wait is told once, after a second."""
    told: list[float] = []
    command = "(sleep 1.6; echo late; echo done > bg.txt) & echo early"
    start = time.monotonic()
    done = execute(
        ["/bin/sh", "-c", command],
        tmp_path,
        tmp_path / "scratch",
        _quiet,
        held_open=lambda: told.append(time.monotonic() - start),
    )
    took = time.monotonic() - start
    assert done.exit_status == 0
    assert done.logs["stdout"].read_text() == "early\nlate\n"  # all of it, captured
    assert (tmp_path / "bg.txt").read_text() == "done\n"  # written before execute returned
    assert took >= 1.6
    assert len(told) == 1 and 0.9 <= told[0] < 1.6


@pytest.mark.parametrize(
    "command",
    [
        "echo quick",
        "sleep 1.3; echo slow",  # a slow command is not a background job
        "(sleep 1.3) >/dev/null 2>&1 & echo detached",  # holds no output: not waited for
    ],
)
def test_nothing_is_told_when_no_process_outlasts_the_command_holding_its_output(
    tmp_path: Path, command: str
) -> None:
    told: list[str] = []
    done = execute(
        ["/bin/sh", "-c", command],
        tmp_path,
        tmp_path / "scratch",
        _quiet,
        held_open=lambda: told.append("told"),
    )
    assert done.exit_status == 0
    assert told == []

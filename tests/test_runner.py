"""runner.execute: capture goes on when the place output is shown to is gone."""

from __future__ import annotations

import threading
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

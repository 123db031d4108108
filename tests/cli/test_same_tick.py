"""An input rewritten during the command within one timestamp tick is still seen.

A file system's timestamps move in ticks (2 s on FAT, 1 s on ext3 and many NFS
servers, a few ms on ext4): a same-size rewrite within the tick the input was hashed
in leaves its stat as it was. The tick is emulated by coarsening every time the stat
cache looks at, its stat keys and its reading of the file system's clock alike, to a
minute: the test's write, gitcache's hash and the command's rewrite then share one
tick however slow the machine is (a run that straddles a minute is tried again).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

import gitcache.statcache as statcache
from tests.helpers import Repo

TICK_NS = 60 * 10**9


def _coarse(ns: int) -> int:
    return ns - ns % TICK_NS


@pytest.fixture
def coarse_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    key = statcache.stat_numbers

    def coarse_key(st: os.stat_result) -> list[int]:
        size, mtime, ctime, ino, mode = key(st)
        return [size, _coarse(mtime), _coarse(ctime), ino, mode]

    monkeypatch.setattr(statcache, "stat_numbers", coarse_key)
    now = getattr(statcache, "filesystem_now", None)  # the clock, where there is one
    if now is not None:
        monkeypatch.setattr(statcache, "filesystem_now", lambda where: _coarse(now(where)))


def test_a_same_size_rewrite_in_the_same_tick_is_not_recorded(
    make: Callable[..., Repo], coarse_timestamps: None
) -> None:
    toml = (
        '[steps.s]\ninputs = ["in.txt"]\noutputs = ["out.txt"]\n'
        'run = "cat in.txt > out.txt && printf two > in.txt"\n'
    )
    for attempt in range(2):
        repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\nin.txt\n"})
        tick = _coarse(time.time_ns())
        repo.write("in.txt", "one")
        result = repo.run("run")
        if _coarse(time.time_ns()) == tick:
            break
        assert attempt == 0, "two runs straddled a tick"
    assert result.exit_code == 1, result.stderr
    assert "input in.txt changed while the step ran" in result.stderr
    assert not repo.refs("refs/gitcache/sig/")

"""An input rewritten during the command within one timestamp tick is still seen.

A file system's timestamps move in ticks (2 s on FAT, 1 s on ext3 and many NFS
servers, a few ms on ext4): a same-size rewrite within the tick the input was hashed
in leaves its stat as it was. The tick is emulated by coarsening every time the stat
cache looks at, its stat keys and its reading of the file system's clock alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

import gitcache.statcache as statcache
from tests.helpers import Repo

TICK_NS = 2_000_000_000  # FAT's


def _coarse(ns: int) -> int:
    return ns - ns % TICK_NS


@pytest.fixture
def coarse_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    key = statcache._key

    def coarse_key(st: os.stat_result) -> statcache.StatKey:
        size, mtime, ctime, ino, mode = key(st)
        return size, _coarse(mtime), _coarse(ctime), ino, mode

    monkeypatch.setattr(statcache, "_key", coarse_key)
    now = getattr(statcache, "filesystem_now", None)  # the clock, where there is one
    if now is not None:
        monkeypatch.setattr(statcache, "filesystem_now", lambda where: _coarse(now(where)))


def start_of_a_tick() -> None:
    """Wait until a tick has just begun: the write, the hash and the rewrite share it."""
    time.sleep((TICK_NS - time.time_ns() % TICK_NS) / 1e9 + 0.01)


def test_a_same_size_rewrite_in_the_same_tick_is_not_recorded(
    make: Callable[..., Repo], coarse_timestamps: None
) -> None:
    toml = (
        '[steps.s]\ninputs = ["in.txt"]\noutputs = ["out.txt"]\n'
        'run = "cat in.txt > out.txt && printf two > in.txt"\n'
    )
    repo = make({"gitcache.toml": toml, ".gitignore": "out.txt\nin.txt\n"})
    start_of_a_tick()
    repo.write("in.txt", "one")
    started = time.time_ns()
    result = repo.run("run")
    assert time.time_ns() - started < TICK_NS // 2, "too slow to stay within one tick"
    assert result.exit_code == 1, result.stderr
    assert "input in.txt changed while the step ran" in result.stderr
    assert not repo.refs("refs/gitcache/sig/")

"""Telling a full disk from other failures, whoever raised it (Python or libgit2)."""

from __future__ import annotations

import errno
import os

from gitcache.errors import DiskFull, disk_full, no_space


def test_a_full_disk_is_recognized_with_or_without_an_errno() -> None:
    assert no_space(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert no_space(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    # libgit2's errors reach Python as OSErrors with its message and no errno.
    assert no_space(OSError("failed to write to stream: No space left on device"))
    assert not no_space(OSError(errno.EACCES, os.strerror(errno.EACCES)))
    assert not no_space(OSError("failed to read file into stream: Input/output error"))
    assert not no_space(ValueError("No space left on device"))


def test_the_message_names_what_was_stored_and_why() -> None:
    raised = disk_full("cannot store out/x.bin", OSError("failed: No space left on device"))
    assert isinstance(raised, DiskFull) and raised.exit_code == 2
    assert raised.message == (
        "cannot store out/x.bin: No space left on device; nothing was recorded"
    )
    assert raised.hint == "free some disk space and run again"

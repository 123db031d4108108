"""Outputs deleted from the worktree by `gitcache remove --outputs`, still held by a record.

Like SoS's `remove -z` (zap), the files are gone from disk but their content stays in
the store. This registry (`removed-outputs-v1.json` in the worktree's own git dir:
`.git/gitcache/` for the main worktree; path -> blob id)
remembers that they were removed on purpose, so that `gitcache run` treats their step
as up to date and restores them only when a step that reads them has to run; an output
that is missing without an entry here is restored as usual.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from gitcache.scratch import temp_prefix

REGISTRY_FILE: Final = "removed-outputs-v1.json"


def removed_everywhere(state_dirs: Iterable[Path]) -> set[tuple[str, str]]:
    """(path, blob id) of every output removed on purpose in any of these worktrees."""
    return {pair for d in state_dirs for pair in RemovedOutputs(d).paths().items()}


class RemovedOutputs:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / REGISTRY_FILE
        self._entries: dict[str, str] = {}
        self._dirty = False
        try:
            data = json.loads(self._path.read_bytes())
            if data.get("version") == 1 and isinstance(data.get("paths"), dict):
                self._entries = {str(k): str(v) for k, v in data["paths"].items()}
        except (OSError, ValueError, AttributeError):
            # A missing or damaged registry only means removed outputs get restored eagerly.
            self._entries = {}

    def blob(self, path: str) -> str | None:
        """The blob id a removed output had, or None if it was not removed by gitcache."""
        return self._entries.get(path)

    def paths(self) -> dict[str, str]:
        return dict(self._entries)

    def add(self, files: Iterable[tuple[str, str]]) -> None:
        for path, blob in files:
            self._entries[path] = blob
            self._dirty = True

    def discard(self, paths: Iterable[str]) -> None:
        if not self._entries:  # the common case: not a path to look up
            return
        for path in paths:
            if self._entries.pop(path, None) is not None:
                self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "paths": self._entries}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=temp_prefix("removed"))
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            os.replace(tmp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._dirty = False

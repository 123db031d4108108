"""A cache of record summaries, so that listing 10,000 records reads no git objects.

A record commit never changes, so its summary (step, signature, times, params,
output blob ids) is cached under the commit id in
`.git/gitcache/record-index-v2.json` and never needs invalidating; entries for
commits no ref names any more are dropped when the file is rewritten. A missing
or damaged file only costs reading record.json again.

Listing (`gitcache log`, `gc`, `remove`) works from summaries; anything that acts
on a record's content (show, restore) loads it with full validation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gitcache.record import OID_PATTERN, SIG_PATTERN, Record
from gitcache.scratch import temp_prefix
from gitcache.stepnames import ref_component_problem
from gitcache.sweeps import encoded_label as item_label

INDEX_FILE: Final = "record-index-v2.json"
# Versions before INDEXED_OUTPUTS_MAX read every row's outputs as a dict (a row without
# them failed there with an AttributeError): they keep their own file, removed when ours
# is saved (it may hold ~3 MB per many-output record).
_OLD_FILES: Final = ("record-index-v1.json",)
# A record with more outputs keeps them out of its summary (None: read record.json when
# asked, RecordStore.summary_outputs): else every record of a 50,000-file output adds
# ~3 MB to the index that each recording run reads and rewrites whole.
INDEXED_OUTPUTS_MAX: Final = 1000
_SIG = re.compile(SIG_PATTERN)
_OID = re.compile(OID_PATTERN)


@dataclass(frozen=True)
class RecordSummary:
    """What listing needs of a record, without its full validation."""

    commit: str
    step: str
    signature: str
    source_commit: str | None
    dirty: bool
    started_at: str
    duration: float
    exit_status: int
    params: dict[str, Any]
    outputs: dict[str, str] | None  # path -> blob id; None: too many to index (above)
    item: dict[str, Any] | None = None  # a sweep item's values (docs/sweeps.md)
    alternate: bool = False  # listed through an alt ref (not stored in the index)

    @property
    def short(self) -> str:
        return self.signature[:12]

    @property
    def label(self) -> str:
        """The step's name, or a sweep item's label (`train[lr=0.1,seed=1]`)."""
        return self.step if self.item is None else item_label(self.step, self.item)

    @classmethod
    def of(cls, commit: str, record: Record) -> RecordSummary:
        return cls(
            commit,
            record.step,
            record.signature,
            record.source_commit,
            record.dirty,
            record.started_at,
            record.duration,
            record.exit_status,
            dict(record.components.params),
            _indexed({o.path: o.blob for o in record.outputs}),
            None if record.item is None else dict(record.item),
        )

    @classmethod
    def from_json(cls, commit: str, data: Any) -> RecordSummary | None:
        """A summary from record.json's parsed JSON, or None if anything looks wrong."""
        # checked before they are dropped (_indexed), as _plausible checks the kept
        outputs = record_outputs(data)
        if outputs is None:
            return None
        try:
            summary = cls(
                commit,
                data["step"],
                data["signature"],
                data["source_commit"],
                data["dirty"],
                data["started_at"],
                float(data["duration"]),
                data["exit_status"],
                dict(data["components"]["params"]),
                _indexed(outputs),
                None if data.get("item") is None else dict(data["item"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return summary if summary._plausible() else None

    def _plausible(self) -> bool:
        return (
            isinstance(self.step, str)
            and ref_component_problem(self.step) is None
            and isinstance(self.signature, str)
            and bool(_SIG.match(self.signature))
            and (self.source_commit is None or bool(_OID.match(str(self.source_commit))))
            and isinstance(self.dirty, bool)
            and isinstance(self.started_at, str)
            and isinstance(self.exit_status, int)
            and (
                self.outputs is None
                or all(isinstance(p, str) and isinstance(b, str) for p, b in self.outputs.items())
            )
            and (self.item is None or isinstance(self.item, dict))
        )

    def as_list(self) -> list[Any]:
        return [
            self.step,
            self.signature,
            self.source_commit,
            self.dirty,
            self.started_at,
            self.duration,
            self.exit_status,
            self.params,
            self.outputs,
            *([] if self.item is None else [self.item]),
        ]


def record_outputs(data: Any) -> dict[str, str] | None:
    """Output path -> blob id from a record.json's parsed JSON; None if it is not that
    shape (a list of objects with string `path` and `blob`)."""
    try:
        outputs = {o["path"]: o["blob"] for o in data["outputs"]}
    except (KeyError, TypeError, AttributeError):
        return None
    if not all(type(p) is str and type(b) is str for p, b in outputs.items()):
        return None
    return outputs


def _indexed(outputs: dict[str, str]) -> dict[str, str] | None:
    return None if len(outputs) > INDEXED_OUTPUTS_MAX else outputs


class RecordIndex:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / INDEX_FILE
        self._entries: dict[str, RecordSummary] = {}
        self._added = False
        try:
            data = json.loads(self._path.read_bytes())
            if data.get("version") == 2:
                for commit, row in data["records"].items():
                    # A tenth column holds a sweep item's values (absent otherwise).
                    self._entries[commit] = RecordSummary(commit, *row[:10])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            self._entries = {}

    def get(self, commit: str) -> RecordSummary | None:
        return self._entries.get(commit)

    def add(self, summary: RecordSummary) -> None:
        self._entries[summary.commit] = summary
        self._added = True

    def save(self, live: set[str] | None = None) -> None:
        """Write the index if it learned something; keep only `live` commits when given."""
        if not self._added:
            return
        entries = {c: s for c, s in self._entries.items() if live is None or c in live}
        payload = {"version": 2, "records": {c: s.as_list() for c, s in entries.items()}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=temp_prefix("record-index"))
        try:
            with os.fdopen(fd, "w") as handle:
                # dumps, not dump: only dumps uses the C encoder (4x faster here).
                handle.write(json.dumps(payload, separators=(",", ":")))
            os.replace(tmp, self._path)
        except OSError:
            # Only a cache: failing to write it costs reading the records next time.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        for old in _OLD_FILES:
            with contextlib.suppress(OSError):
                os.unlink(self._path.parent / old)
        self._entries = entries
        self._added = False

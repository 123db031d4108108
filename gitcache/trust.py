"""Checks on a record that may have come from another machine, before gitcache uses it.

`store.load` has already validated record.json (record.py: every field, safe relative paths) and
that every output's blob and mode in the commit's tree match record.json. What is
left needs context: the signature the record is filed under, and the step whose
outputs it may write. Worktree.restore then checks the file system and the limits.
"""

from __future__ import annotations

from collections.abc import Sequence

from gitcache.errors import UnsafeRecord
from gitcache.signature import signature_of
from gitcache.store import StoredRecord


def check_signature(stored: StoredRecord, signature: str) -> None:
    """The record is the one for `signature`, and its components hash to it."""
    record = stored.record
    where = f"record {stored.commit[:12]}"
    if record.signature != signature:
        raise UnsafeRecord(
            f"{where} is filed under signature {signature[:12]} but its record.json "
            f"says {record.signature[:12]}"
        )
    if signature_of(record.components) != signature:
        raise UnsafeRecord(f"{where}: its components do not hash to its signature {signature[:12]}")


def check_step(stored: StoredRecord, step: str, signature: str) -> None:
    """The record is a record of `step`, whose signature it is filed under. The step's
    name is not part of the signature, so only the step looking the signature up knows
    it; a record saying another step would be listed, expired (`gc` counts records per
    step) and taken as recorded content (`restoring.recorded_blobs`) as that step's."""
    if stored.record.step != step:
        raise UnsafeRecord(
            f"record {stored.commit[:12]} is filed under the signature {signature[:12]} of "
            f"step {step!r}, but its record.json says step {stored.record.step!r}"
        )


def check_outputs(stored: StoredRecord, step: str, declared: Sequence[str]) -> None:
    """Every file the record would write is (or lies under) an output the step declares."""
    names = frozenset(declared)
    under = tuple(d + "/" for d in declared)  # one startswith per path, not one per output
    for out in stored.record.outputs:
        if out.path not in names and not out.path.startswith(under):
            raise UnsafeRecord(
                f"record {stored.commit[:12]} would write {out.path}, "
                f"which is not an output of step {step!r}"
            )


def vet(stored: StoredRecord, step: str, declared: Sequence[str], signature: str) -> None:
    """All the checks before restoring a record's outputs for `step` (raises UnsafeRecord)."""
    check_signature(stored, signature)
    check_step(stored, step, signature)
    check_outputs(stored, step, declared)

"""`gitcache diff A B`: what differs between two records."""

from __future__ import annotations

from dataclasses import dataclass, field

from gitcache.record import Record
from gitcache.status import describe_changes, short


@dataclass
class RecordDiff:
    signature: list[str] = field(default_factory=list)  # params, inputs, code, env, ...
    outputs: list[str] = field(default_factory=list)
    provenance: list[str] = field(default_factory=list)  # step, commit, dirty

    @property
    def same(self) -> bool:
        return not (self.signature or self.outputs)

    def lines(self) -> list[str]:
        return [*self.provenance, *self.signature, *self.outputs]


def diff_records(a: Record, b: Record) -> RecordDiff:
    diff = RecordDiff()
    if a.step != b.step:
        diff.provenance.append(f"step {a.step} -> {b.step}")
    if a.source_commit != b.source_commit:
        diff.provenance.append(f"commit {short(a.source_commit)} -> {short(b.source_commit)}")
    if a.dirty != b.dirty:
        diff.provenance.append(f"dirty {str(a.dirty).lower()} -> {str(b.dirty).lower()}")
    diff.signature = describe_changes(a.components, b.components)
    old = {o.path: o for o in a.outputs}
    new = {o.path: o for o in b.outputs}
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is None:
            diff.outputs.append(f"output {path} only in the second record")
        elif after is None:
            diff.outputs.append(f"output {path} only in the first record")
        elif before.blob != after.blob or before.mode != after.mode:
            diff.outputs.append(
                f"output {path} differs ({short(before.blob)} {before.size} bytes -> "
                f"{short(after.blob)} {after.size} bytes)"
            )
    return diff

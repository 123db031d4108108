"""Evaluate a step against the worktree and the store: its signature, its record, its outputs.

`run`, `status` and dry runs share this. While walking the steps in order, the
planner learns what earlier steps will do: outputs that a record will restore are
known by their recorded blob ids (an overlay), outputs that a step will re-run to
produce are unknown, and so is the signature of every step that reads them.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from gitcache.errors import ConfigError
from gitcache.gitrepo import MODE_EXEC, MODE_LINK
from gitcache.graph import input_covers, input_matches_output
from gitcache.project import Project
from gitcache.record import Components
from gitcache.signature import shell_components, signature_of
from gitcache.statcache import FileState
from gitcache.store import StoredRecord
from gitcache.sweeps import Units
from gitcache.workflow import Step
from gitcache.worktree import Worktree

_MAX_HOPS = 40  # symlinks followed in a row, as the kernel's limit (ELOOP)


def _link_text(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


class Mismatch(NamedTuple):
    """An output that differs from the record (a tuple: a restore of 50,000 missing files
    makes one per file)."""

    path: str
    recorded: str | None  # blob id in the record (None: the worktree has a file the record lacks)
    worktree: str | None  # blob id in the worktree (None: missing)

    @property
    def extra(self) -> bool:
        """A worktree file under a directory output that the record does not hold."""
        return self.recorded is None and self.worktree is not None


@dataclass(frozen=True)
class Evaluation:
    step: Step
    inputs: dict[str, str]  # path -> blob id
    unknown: list[str]  # upstream steps whose outputs this step reads and that will change
    missing: list[str]  # declared inputs that match nothing and that no step produces
    components: Components | None
    signature: str | None
    record: StoredRecord | None  # the record of this signature, if the store has one
    outputs: Mapping[str, FileState | None]  # worktree state of the declared outputs
    # A seal (statcache.py) vouched that the outputs are exactly the record's: nothing
    # was compared file by file, and `outputs` is the record's, read when first used.
    sealed: bool = False
    # The walk of the declared outputs (`Worktree.output_walk`) that `outputs` holds the
    # states of, when there was one: `-s build` stores from it without walking again.
    walked: Sequence[Sequence[tuple[str, os.stat_result]] | None] | None = None

    @property
    def known(self) -> bool:
        return self.signature is not None

    def mismatches(self) -> list[Mismatch]:
        """Outputs that differ from the record (empty when there is no record)."""
        return list(self._mismatches)

    @cached_property
    def _mismatches(self) -> tuple[Mismatch, ...]:
        # Asked several times per step (skip, restore, removed on purpose): computed once.
        if self.record is None or self.sealed:
            return ()
        found = []
        recorded = {o.path: o for o in self.record.record.outputs}
        for path, out in recorded.items():
            state = self.outputs.get(path)
            if state is None or state.oid != out.blob or state.mode != out.mode:
                found.append(Mismatch(path, out.blob, None if state is None else state.oid))
        for path, state in self.outputs.items():
            if path in recorded:
                continue
            if state is not None:  # a directory output is exactly its record: no extra file
                found.append(Mismatch(path, None, state.oid))
            elif not any(p == path or p.startswith(path + "/") for p in recorded):
                found.append(Mismatch(path, None, None))  # an empty directory, now missing
        return tuple(found)


class _LazyOutputs(Mapping[str, FileState | None]):
    """An evaluation's outputs, found only if someone asks: a sealed evaluation's are the
    record's files, which the worktree holds (the seal says so); an evaluation with no
    record to compare them with has the worktree's, which nothing needs then (a miss runs
    the step, `-s build` stores what is there), so a big output is not hashed for
    nothing."""

    def __init__(self, find: Callable[[], Mapping[str, FileState | None]]) -> None:
        self._find = find

    @cached_property
    def _states(self) -> Mapping[str, FileState | None]:
        return self._find()

    def __getitem__(self, path: str) -> FileState | None:
        return self._states[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)


def _recorded_outputs(stored: StoredRecord) -> _LazyOutputs:
    return _LazyOutputs(
        lambda: {o.path: FileState(o.blob, o.mode, o.size) for o in stored.record.outputs}
    )


def _unrecorded(
    step: Step,
    inputs: dict[str, str],
    unknown: list[str],
    missing: list[str],
    components: Components | None,
    signature: str | None,
    worktree: Worktree,
) -> Evaluation:
    outputs = _LazyOutputs(lambda: worktree.output_states(step.outputs))
    return Evaluation(step, inputs, unknown, missing, components, signature, None, outputs)


@dataclass
class Planner:
    """Evaluates units (plain steps and sweep items, keyed as `Units` keys them)."""

    project: Project
    params: Mapping[str, Any]
    environ: Mapping[str, str]
    overlay: dict[str, FileState] = field(default_factory=dict)
    # Declared outputs of steps that will be restored: restoring removes the files the
    # record does not hold, so later steps do not see them.
    exact: list[str] = field(default_factory=list)
    changing: set[str] = field(default_factory=set)  # units that will (re)run
    units: Units = field(init=False)

    def __post_init__(self) -> None:
        self.units = self.project.workflow.units(self.project.worktree, dict(self.params))

    @cached_property
    def exec_bits(self) -> bool:
        """Whether file modes count: not where git ignores them (core.filemode = false,
        file systems that show every file executable), so such a clone and any other
        give an input the same signature."""
        value = (self.project.repo.config_value("core.filemode") or "true").lower()
        return value not in ("false", "no", "off", "0")

    def walk(self, targets: list[str]) -> Iterator[str]:
        """Unit keys of `targets` and what they need, in run order; a dynamic foreach
        step's items once what it reads is known (its producers up to date or
        restorable), else its own key, still in `units.dynamic` (its items unknown)."""
        for key in self.units.select(targets):
            if key not in self.units.dynamic:
                yield key
                continue
            if any(u in self.changing for u in self.units.needs[key]):
                self.will_change(key)
                yield key
                continue
            found = self.units.foreach_files(key, self.project.worktree, self.overlay)
            if isinstance(found, str):
                raise ConfigError(found)
            yield from self.units.fan_out(key, found)

    def evaluate(self, name: str) -> Evaluation:
        step = self.units.steps[name]
        upstream = self.units.needs[name]
        worktree = self.project.worktree
        unknown = [u for u in upstream if u in self.changing]
        inputs: dict[str, str] = {}
        executable: list[str] = []
        missing: list[str] = []
        if not unknown:
            expansion = worktree.expand(step.signed_inputs)
            for path in expansion.files:
                if self.exact and path not in self.overlay and self._removed_by_restore(path):
                    continue
                state = self._input_state(path)
                if state is not None:
                    inputs[path] = state.oid
                    if state.mode == MODE_EXEC and self.exec_bits:
                        executable.append(path)
            for path in self.overlay:
                if path not in inputs and any(input_covers(p, path) for p in step.signed_inputs):
                    followed = self._input_state(path)
                    if followed is not None:
                        inputs[path] = followed.oid
                        if followed.mode == MODE_EXEC and self.exec_bits:
                            executable.append(path)
            for pattern in expansion.missing:
                produced = any(
                    input_matches_output(pattern, out)
                    for u in upstream
                    for out in self.units.outputs_of(u)
                )
                if not produced or not any(input_covers(pattern, p) for p in inputs):
                    missing.append(pattern)
            for path in expansion.dangling:  # inputs follow symlinks: this one leads nowhere
                missing.append(f"{path} -> {_link_text(worktree.root / path)}")
        components = signature = commit = None
        store = self.project.store
        if not unknown and not missing:
            components = shell_components(step, self.params, inputs, self.environ, executable)
            signature = signature_of(components)
            commit = store.sig_commit(signature)
        if commit is None:  # no record to compare with: the outputs are not read
            return _unrecorded(step, inputs, unknown, missing, components, signature, worktree)
        assert signature is not None  # a commit was looked up by it
        walked = worktree.output_walk(step.outputs)
        if worktree.cache.sealed(step.key, signature, commit, walked):
            sealed = store.sealed(commit, signature)
            return Evaluation(
                step,
                inputs,
                unknown,
                missing,
                components,
                signature,
                sealed,
                _recorded_outputs(sealed),
                sealed=True,
            )
        record = store.usable(commit, signature, step.name)
        if record is None:
            return _unrecorded(step, inputs, unknown, missing, components, signature, worktree)
        outputs = worktree.output_states(step.outputs, walked)
        evaluation = Evaluation(
            step, inputs, unknown, missing, components, signature, record, outputs, walked=walked
        )
        if not evaluation.mismatches():
            blobs = {out.path: out.blob for out in record.record.outputs}
            worktree.cache.seal(
                step.key,
                signature,
                record.commit,
                [
                    None if found is None else [(rel, blobs.get(rel, "")) for rel, _ in found]
                    for found in walked
                ],
            )
        return evaluation

    def _removed_by_restore(self, path: str) -> bool:
        return any(path == d or path.startswith(d + "/") for d in self.exact)

    def _input_state(self, path: str, hops: int = 0) -> FileState | None:
        """An input's state: the overlay's, or the worktree's with symlinks followed.

        A symlink in the overlay (a recorded output) counts by what it points to.
        """
        state = self.overlay.get(path)
        worktree = self.project.worktree
        if state is None:
            return worktree.state(path, follow=True)
        if state.mode != MODE_LINK:
            return state
        link = os.fsdecode(self.project.repo.read_blob(state.oid))
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        if hops > _MAX_HOPS or posixpath.isabs(link) or target.split("/")[0] == "..":
            return worktree.state(path, follow=True)  # as the worktree has it now
        return self._input_state(target, hops + 1)

    def will_restore(self, evaluation: Evaluation) -> None:
        """Later steps see this step's outputs as its record holds them, and nothing else."""
        assert evaluation.record is not None
        for out in evaluation.record.record.outputs:
            self.overlay[out.path] = FileState(out.blob, out.mode, out.size)
        self.exact.extend(evaluation.step.outputs)

    def removed_on_purpose(self, evaluation: Evaluation) -> bool:
        """The record matches, and every output it lacks was removed by `remove --outputs`.

        Such a step is up to date with its outputs kept only in the store; later steps
        see them through the overlay (`will_restore`) until one really needs the files.
        """
        mismatches = evaluation.mismatches()
        if not mismatches:  # the common case: no registry to read
            return False
        removed = self.project.removed
        return all(
            m.worktree is None and m.recorded is not None and removed.blob(m.path) == m.recorded
            for m in mismatches
        )

    def will_change(self, name: str) -> None:
        """Later steps that read this step's outputs cannot know their signature yet."""
        self.changing.add(name)
        group = self.units.group.get(name)  # an item of a dynamic foreach: its step too
        if group is not None:
            self.changing.add(group)

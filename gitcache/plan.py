"""Evaluate a step against the worktree and the store: its signature, its record, its outputs.

`run`, `status` and dry runs share this. While walking the steps in order, the
planner learns what earlier steps will do: outputs that a record will restore are
known by their recorded blob ids (an overlay), outputs that a step will re-run to
produce are unknown, and so is the signature of every step that reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gitcache.errors import ConfigError
from gitcache.graph import input_covers, input_matches_output
from gitcache.project import Project
from gitcache.record import Components
from gitcache.signature import shell_components, signature_of
from gitcache.statcache import FileState
from gitcache.store import StoredRecord
from gitcache.sweeps import Units
from gitcache.workflow import Step


@dataclass(frozen=True)
class Mismatch:
    path: str
    recorded: str | None  # blob id in the record (None: the worktree has a file the record lacks)
    worktree: str | None  # blob id in the worktree (None: missing)


@dataclass(frozen=True)
class Evaluation:
    step: Step
    inputs: dict[str, str]  # path -> blob id
    unknown: list[str]  # upstream steps whose outputs this step reads and that will change
    missing: list[str]  # declared inputs that match nothing and that no step produces
    components: Components | None
    signature: str | None
    record: StoredRecord | None  # the record of this signature, if the store has one
    outputs: dict[str, FileState | None]  # worktree state of the declared outputs

    @property
    def known(self) -> bool:
        return self.signature is not None

    def mismatches(self) -> list[Mismatch]:
        """Outputs that differ from the record (empty when there is no record)."""
        return list(self._mismatches)

    @cached_property
    def _mismatches(self) -> tuple[Mismatch, ...]:
        # Asked several times per step (skip, restore, removed on purpose): computed once.
        if self.record is None:
            return ()
        found = []
        recorded = {o.path: o for o in self.record.record.outputs}
        for path, out in recorded.items():
            state = self.outputs.get(path)
            if state is None or state.oid != out.blob or state.mode != out.mode:
                found.append(Mismatch(path, out.blob, None if state is None else state.oid))
        for path, state in self.outputs.items():
            if state is None and not any(p == path or p.startswith(path + "/") for p in recorded):
                found.append(Mismatch(path, None, None))
        return tuple(found)


@dataclass
class Planner:
    """Evaluates units (plain steps and sweep items, keyed as `Units` keys them)."""

    project: Project
    params: Mapping[str, Any]
    environ: Mapping[str, str]
    overlay: dict[str, FileState] = field(default_factory=dict)
    changing: set[str] = field(default_factory=set)  # units that will (re)run
    units: Units = field(init=False)

    def __post_init__(self) -> None:
        self.units = self.project.workflow.units(self.project.worktree, dict(self.params))

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
        missing: list[str] = []
        if not unknown:
            expansion = worktree.expand(step.inputs)
            for path in expansion.files:
                state = self.overlay.get(path) or worktree.state(path)
                if state is not None:
                    inputs[path] = state.oid
            for path, state in self.overlay.items():
                if path not in inputs and any(input_covers(p, path) for p in step.inputs):
                    inputs[path] = state.oid
            for pattern in expansion.missing:
                produced = any(
                    input_matches_output(pattern, out)
                    for u in upstream
                    for out in self.units.outputs_of(u)
                )
                if not produced or not any(input_covers(pattern, p) for p in inputs):
                    missing.append(pattern)
        components = signature = record = None
        if not unknown and not missing:
            components = shell_components(step, self.params, inputs, self.environ)
            signature = signature_of(components)
            record = self.project.store.lookup(signature, quick=True)
        outputs = worktree.output_states(step.outputs)
        return Evaluation(step, inputs, unknown, missing, components, signature, record, outputs)

    def will_restore(self, evaluation: Evaluation) -> None:
        """Later steps see this step's outputs as its record holds them."""
        assert evaluation.record is not None
        for out in evaluation.record.record.outputs:
            self.overlay[out.path] = FileState(out.blob, out.mode, out.size)

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

"""`gitcache run`: decide per step (skip, restore, run, record, check) and do it.

The engine returns data and reports events to a Reporter; it never prints.
Signature modes follow SoS (SPEC §5).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gitcache import __version__, interpolate
from gitcache.errors import ConfigError, StepFailed
from gitcache.gitrepo import MODE_LINK, TreeEntry
from gitcache.graph import input_matches_output
from gitcache.locks import signature_lock
from gitcache.plan import Evaluation, Mismatch, Planner
from gitcache.project import Project
from gitcache.record import OutputFile, Record
from gitcache.store import NewRecord, StoredRecord

Mode = Literal["default", "ignore", "force", "build", "assert", "skip"]
MODES: tuple[Mode, ...] = ("default", "ignore", "force", "build", "assert", "skip")

Outcome = Literal[
    "skipped",  # outputs match the record (or, in skip mode, are newer than the inputs)
    "restored",  # outputs written from the record, nothing ran
    "ran",  # the command ran and a record was written (or not, in ignore mode)
    "recorded",  # build mode: existing outputs recorded without running
    "verified",  # assert mode: outputs match the record
    "mismatch",  # assert mode: they do not
    "failed",  # the command failed or did not produce an output
    "would-run",
    "would-restore",
    "pending",  # not reached: something it needs failed or mismatched
]


class Reporter(Protocol):
    def step_started(self, step: str, action: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def output(self, step: str, stream: str, data: bytes) -> None: ...
    def warning(self, message: str) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    mode: Mode = "default"
    params: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    keep_going: bool = False


@dataclass(frozen=True)
class StepResult:
    step: str
    outcome: Outcome
    signature: str | None = None
    record: StoredRecord | None = None
    detail: str = ""  # why it failed / what mismatched / what it restored
    mismatches: tuple[Mismatch, ...] = ()
    exit_status: int | None = None


@dataclass
class RunSummary:
    results: list[StepResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def exit_code(self) -> int:
        outcomes = {r.outcome for r in self.results}
        if "failed" in outcomes:
            return StepFailed.exit_code
        if "mismatch" in outcomes:
            return 3
        return 0


class Engine:
    def __init__(self, project: Project, options: RunOptions, reporter: Reporter) -> None:
        self.project = project
        self.options = options
        self.reporter = reporter
        self.params = {**project.workflow.params, **options.params}
        self.planner = Planner(project, self.params, os.environ)

    def run(self, targets: list[str]) -> RunSummary:
        order = self.project.workflow.select(targets)
        self._preflight(order)
        summary = RunSummary()
        blocked: set[str] = set()
        for name in order:
            needs = self.project.workflow.graph.needs[name]
            if any(n in blocked for n in needs):
                blocked.add(name)
                summary.results.append(
                    StepResult(name, "pending", detail="a step it needs did not succeed")
                )
                continue
            if blocked and not self.options.keep_going:
                blocked.add(name)
                summary.results.append(
                    StepResult(name, "pending", detail="stopped after a failure")
                )
                continue
            result = self._step(name)
            self.reporter.step_finished(result)
            summary.results.append(result)
            if result.outcome in ("failed", "mismatch"):
                blocked.add(name)
        return summary

    def _preflight(self, order: list[str]) -> None:
        """Inputs that no step produces must exist before anything runs."""
        workflow = self.project.workflow
        for name in order:
            produced = [o for u in workflow.graph.needs[name] for o in workflow.steps[u].outputs]
            for pattern in workflow.steps[name].inputs:
                if any(input_matches_output(pattern, o) for o in produced):
                    continue
                if not self.project.worktree.expand([pattern]).files:
                    raise ConfigError(
                        f"{workflow.path.name}: step {name!r}: input {pattern!r} does not exist "
                        "and no step produces it"
                    )

    # -- one step ------------------------------------------------------------------

    def _step(self, name: str) -> StepResult:
        mode = self.options.mode
        if mode == "ignore":
            evaluation = self.planner.evaluate(name)
            return self._execute(evaluation, record=False)
        evaluation = self.planner.evaluate(name)
        if evaluation.missing:
            return StepResult(
                name, "failed", detail=f"input {evaluation.missing[0]} does not exist"
            )
        if mode == "assert":
            return self._assert(evaluation)
        if mode == "build":
            return self._build(evaluation)
        if mode == "skip" and self._newer_than_inputs(evaluation):
            return StepResult(
                name, "skipped", evaluation.signature, detail="outputs newer than inputs"
            )
        if mode != "force" and evaluation.record is not None:
            return self._use_record(evaluation, evaluation.record)
        return self._execute(evaluation, record=True)

    def _use_record(self, evaluation: Evaluation, stored: StoredRecord) -> StepResult:
        name = evaluation.step.name
        mismatches = evaluation.mismatches()
        if self.options.dry_run:
            self.planner.will_restore(evaluation)
            return StepResult(
                name, "would-restore" if mismatches else "skipped", evaluation.signature, stored
            )
        if mismatches:
            self.reporter.step_started(name, "restoring")
            wanted = {m.path for m in mismatches}
            self.project.worktree.restore([o for o in stored.record.outputs if o.path in wanted])
        self.project.store.set_latest(stored)
        detail = ", ".join(sorted(m.path for m in mismatches))
        return StepResult(
            name, "restored" if mismatches else "skipped", evaluation.signature, stored, detail
        )

    def _execute(self, evaluation: Evaluation, record: bool) -> StepResult:
        step = evaluation.step
        if self.options.dry_run:
            self.planner.will_change(step.name)
            return StepResult(step.name, "would-run", evaluation.signature)
        command = self._command(evaluation)
        if not record or evaluation.signature is None:
            return self._run_command(evaluation, command, record=False)
        with signature_lock(
            self.project.repo.state_dir, evaluation.signature, self.reporter.warning
        ):
            if self.options.mode != "force":
                # Another process may have recorded it while we waited for the lock.
                again = self.project.store.lookup(evaluation.signature)
                if again is not None:
                    fresh = self.planner.evaluate(step.name)
                    return self._use_record(fresh, again)
            return self._run_command(evaluation, command, record=True)

    def _command(self, evaluation: Evaluation) -> str:
        step = evaluation.step
        inputs = self.project.worktree.expand(step.inputs).files
        try:
            return interpolate.render(step.run, self.params, inputs, list(step.outputs))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ConfigError(f"step {step.name!r}: cannot fill in its command: {exc!r}") from None

    def _run_command(self, evaluation: Evaluation, command: str, record: bool) -> StepResult:
        # Imported here: a no-op run starts no process, so it need not import subprocess.
        from gitcache.runner import execute, shell_argv

        step = evaluation.step
        self.reporter.step_started(step.name, "running")
        for declared in step.outputs:  # as make users expect: the command only writes files
            (self.project.repo.root / declared).parent.mkdir(parents=True, exist_ok=True)
        scratch = self.project.repo.state_dir / "tmp" / f"{os.getpid()}-{step.name}"
        execution = execute(
            shell_argv(step.spec.shell, command),
            self.project.repo.root,
            scratch,
            lambda stream, data: self.reporter.output(step.name, stream, data),
        )
        try:
            if execution.exit_status != 0:
                return StepResult(
                    step.name,
                    "failed",
                    evaluation.signature,
                    detail=f"command exited with status {execution.exit_status}",
                    exit_status=execution.exit_status,
                )
            outputs = self._collect_outputs(evaluation)
            if isinstance(outputs, StepResult):
                return outputs
            if not record:
                self.planner.will_change(step.name)
                return StepResult(step.name, "ran", evaluation.signature, exit_status=0)
            stored = self._record(
                evaluation,
                command,
                outputs,
                execution.logs,
                execution.started_at,
                execution.duration,
            )
            return StepResult(step.name, "ran", evaluation.signature, stored, exit_status=0)
        finally:
            for path in execution.logs.values():
                path.unlink(missing_ok=True)
            scratch.rmdir()

    def _collect_outputs(self, evaluation: Evaluation) -> list[OutputFile] | StepResult:
        """Store every output file as a blob; a declared output that is missing fails the step."""
        step = evaluation.step
        worktree = self.project.worktree
        files: list[OutputFile] = []
        for declared in step.outputs:
            found = worktree.expand([declared]).files
            if not found:
                return StepResult(
                    step.name,
                    "failed",
                    evaluation.signature,
                    detail=f"declared output {declared} was not produced",
                )
            for rel in found:
                path = worktree.root / rel
                st = os.lstat(path)
                state = worktree.state(rel)
                assert state is not None
                if state.mode == MODE_LINK:
                    oid = self.project.repo.write_blob(os.fsencode(os.readlink(path)))
                else:
                    oid = self.project.repo.write_blob_file(path)
                    worktree.cache.remember(rel, st, oid)
                files.append(OutputFile(path=rel, blob=oid, mode=state.mode, size=st.st_size))
        return files

    def _record(
        self,
        evaluation: Evaluation,
        command: str,
        outputs: list[OutputFile],
        logs: dict[str, Any],
        started_at: str,
        duration: float,
    ) -> StoredRecord:
        assert evaluation.components is not None and evaluation.signature is not None
        repo = self.project.repo
        head = repo.head_commit()
        dirty_files = repo.changed_tracked_files() if head is not None else []
        record = Record(
            step=evaluation.step.name,
            signature=evaluation.signature,
            components=evaluation.components,
            command=command,
            outputs=outputs,
            source_commit=head,
            dirty=bool(dirty_files),
            dirty_files=dirty_files,
            started_at=started_at,
            duration=round(duration, 6),
            exit_status=0,
            host=socket.gethostname(),
            gitcache_version=__version__,
        )
        new = NewRecord(record, [TreeEntry(o.path, o.blob, o.mode) for o in outputs], logs)
        return self.project.store.write(new, head, replace=self.options.mode == "force")

    # -- the modes that never run ------------------------------------------------------

    def _assert(self, evaluation: Evaluation) -> StepResult:
        name = evaluation.step.name
        if evaluation.record is None:
            return StepResult(
                name,
                "mismatch",
                evaluation.signature,
                detail="no record has this step's current signature",
            )
        mismatches = evaluation.mismatches()
        if mismatches:
            return StepResult(
                name,
                "mismatch",
                evaluation.signature,
                evaluation.record,
                mismatches=tuple(mismatches),
            )
        return StepResult(name, "verified", evaluation.signature, evaluation.record)

    def _build(self, evaluation: Evaluation) -> StepResult:
        name = evaluation.step.name
        if evaluation.record is not None and not evaluation.mismatches():
            return StepResult(name, "skipped", evaluation.signature, evaluation.record)
        if self.options.dry_run:
            return StepResult(name, "would-run", evaluation.signature)
        outputs = self._collect_outputs(evaluation)
        if isinstance(outputs, StepResult):
            return outputs
        command = self._command(evaluation)
        scratch = self.project.repo.state_dir / "tmp" / f"{os.getpid()}-{name}"
        scratch.mkdir(parents=True, exist_ok=True)
        logs = {s: scratch / s for s in ("stdout", "stderr")}
        for path in logs.values():
            path.write_bytes(b"")
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            stored = self._record(evaluation, command, outputs, logs, stamp, 0.0)
        finally:
            for path in logs.values():
                path.unlink(missing_ok=True)
            scratch.rmdir()
        return StepResult(name, "recorded", evaluation.signature, stored)

    def _newer_than_inputs(self, evaluation: Evaluation) -> bool:
        root = self.project.repo.root
        try:
            out_times = [os.stat(root / p).st_mtime_ns for p in evaluation.outputs]
            in_times = [os.stat(root / p).st_mtime_ns for p in evaluation.inputs]
        except OSError:
            return False
        if not out_times or any(s is None for s in evaluation.outputs.values()):
            return False
        return not in_times or min(out_times) >= max(in_times)

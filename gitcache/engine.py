"""`gitcache run`: decide per step (skip, restore, run, record, check) and do it.

The engine returns data and reports events to a Reporter; it never prints.
Signature modes follow SoS (SPEC §5).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from gitcache import __version__, interpolate, locks, provenance, statcache
from gitcache.dirtree import make_dirs
from gitcache.errors import ConfigError, StepFailed, UnreadableFile, UnsafeRecord
from gitcache.gitrepo import MODE_EXEC
from gitcache.graph import input_matches_output, is_glob
from gitcache.locks import LockSpares, outputs_lock, signature_lock, writing_objects
from gitcache.objects.stored import StoredFile
from gitcache.params import encode
from gitcache.plan import Evaluation, Mismatch, Planner
from gitcache.processes import Children, forwarding_signals, signals_held
from gitcache.project import Project
from gitcache.record import OutputFile, Record
from gitcache.scheduler import schedule
from gitcache.scratch import clean_stale, clean_stale_files, scratch_dir
from gitcache.status import describe_changes
from gitcache.store import NewRecord, RefBatch, StoredRecord
from gitcache.sweeps import format_values, item_id
from gitcache.transfer import Meter
from gitcache.trust import vet
from gitcache.workflow import Step
from gitcache.worktree import ChunkIds

if TYPE_CHECKING:
    from gitcache.restoring import RestoreResult
    from gitcache.runner import Execution

Mode = Literal["default", "ignore", "force", "build", "assert", "skip"]
MODES: tuple[Mode, ...] = ("default", "ignore", "force", "build", "assert", "skip")

Outcome = Literal[
    "skipped",  # outputs match the record (or, in skip mode, are newer than the inputs)
    "stored",  # up to date, outputs removed from the worktree on purpose and kept in the store
    "restored",  # outputs written from the record, nothing ran
    "ran",  # the command ran and a record was written (or not, in ignore mode)
    "recorded",  # build mode: existing outputs recorded without running
    "verified",  # assert mode: outputs match the record
    "mismatch",  # assert mode: they do not
    "failed",  # the command failed or did not produce an output
    "would-run",
    "would-record",  # build mode, dry run
    "would-restore",
    "pending",  # not reached: something it needs failed or mismatched
]


class Reporter(Protocol):
    def step_started(self, step: str, action: str) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...
    def output(self, step: str, stream: str, data: bytes) -> None: ...
    def warning(self, message: str) -> None: ...


@runtime_checkable
class TransferReporter(Protocol):
    """A reporter that also wants to hear how far storing or restoring files has got
    (files and bytes: transfer.Meter)."""

    def transfer(self, meter: Meter) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    mode: Mode = "default"
    params: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    keep_going: bool = False
    jobs: int = 1  # steps run at the same time (`-j N`)
    # Asked on a local miss with the signature (e.g. a remote look-up, sharing.py);
    # returns True when it brought a record into the store.
    on_miss: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class StepResult:
    step: str
    outcome: Outcome
    signature: str | None = None
    record: StoredRecord | None = None
    detail: str = ""  # why it failed / what mismatched / what it restored
    mismatches: tuple[Mismatch, ...] = ()
    exit_status: int | None = None
    restored: tuple[str, ...] = ()  # files written from the record
    removed: tuple[str, ...] = ()  # files under its outputs that the record does not hold


@dataclass
class RunSummary:
    results: list[StepResult] = field(default_factory=list)

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
        self._environ: dict[str, str] | None = None  # os.environ when the run started
        self.params = {**project.workflow.params, **options.params}
        self.planner = Planner(project, self.params, os.environ)
        # Held by whichever thread touches git, the stat cache or the planner; released
        # only while a step's command runs, so with -j N the commands overlap but pygit2
        # objects and the planner are never used by two threads at once.
        self._lock = threading.Lock()
        self._explicit: set[str] = set()
        self._deferred: dict[str, OutputFile] = {}  # removed outputs not yet restored
        self._deferred_chunks: dict[str, tuple[str, ...]] = {}  # their chunks, if chunked
        self._deferred_owners: dict[str, tuple[str, ...]] = {}  # their steps' declared outputs
        self._interrupted = threading.Event()  # a signal stopped a parallel run
        self._children = Children()  # the commands running now
        self._batch = RefBatch(project.store)  # sweep items' refs, written together
        # One scratch directory per thread for the sweep items it runs (creating and
        # removing one per item costs a few ms), removed at the end of the run.
        self._item_scratch: dict[int, Path] = {}
        self._scratches = ExitStack()
        self._sources = provenance.Sources(project.repo, project.workflow.config)
        self._lock_spares: LockSpares | None = None  # sweep items' lock files (locks.py)

    def plan(self, targets: list[str]) -> list[str]:
        """The units a run of `targets` goes through, in order (a dynamic foreach step
        counts as one until it is reached); ConfigError for an unknown target."""
        return self.planner.units.select(targets)

    def run(self, targets: list[str]) -> RunSummary:
        units = self.planner.units
        order = units.select(targets)
        self._preflight(order)
        self._environ = None
        self._explicit = set(units.resolve(targets)) if targets else set()
        jobs = 1 if self.options.dry_run else max(1, self.options.jobs)
        # assert runs nothing, so checking the independent steps too costs nothing.
        keep_going = self.options.keep_going or self.options.mode == "assert"
        if not self.options.dry_run:
            clean_stale(self.project.repo.state_dir)  # scratch of killed processes
            for directory in (self.project.repo.state_dir, self.project.repo.worktree_state_dir):
                clean_stale_files(directory)  # their half-written state files
        with forwarding_signals(self._children):
            try:
                results = schedule(
                    order,
                    units.needs,
                    self._step_locked,
                    self.reporter.step_finished,
                    lambda name, why: StepResult(name, "pending", detail=why),
                    jobs,
                    keep_going,
                    self._interrupt,
                    self._fan_out_locked if units.dynamic else None,
                )
            finally:  # also after a failure or a signal: finished items keep their record
                self._batch.flush()
                self._scratches.close()
        return RunSummary(results)

    def _interrupt(self, signum: int) -> None:
        """A signal arrived: no step that has not finished records; stop the commands."""
        self._interrupted.set()
        self._children.stop_all(signum)

    def _step_locked(self, name: str) -> StepResult:
        if self.options.dry_run:
            with self._lock:
                return self._step(name)
        # From the record look-up (a restore reads its blobs) and the provenance snapshot
        # (objects written before the command) to the record's refs: no `gitcache gc
        # --prune` may delete what this step has not yet referenced. Taken before the
        # engine's lock, so a thread waiting for a gc never holds up the other steps.
        with writing_objects(self.project.repo.state_dir, self.reporter.warning), self._lock:
            return self._step(name)

    def _fan_out_locked(self, name: str) -> list[str] | StepResult | None:
        with self._lock:
            return self._fan_out(name)

    def _fan_out(self, name: str) -> list[str] | StepResult | None:
        """A dynamic foreach step, reached: its items, from the files its producers left."""
        units = self.planner.units
        if name not in units.dynamic:
            return None
        waiting = [u for u in units.needs[name] if u in self.planner.changing]
        if waiting:  # a dry run: the producer would run, so its files are not known yet
            self.planner.will_change(name)
            detail = f"items known once {', '.join(waiting)} ran"
            return StepResult(name, "would-run", detail=detail)
        found = units.foreach_files(name, self.project.worktree, self.planner.overlay)
        if isinstance(found, str):
            return StepResult(name, "failed", detail=found)
        try:
            keys = units.fan_out(name, found)
            self._preflight(keys)
        except ConfigError as exc:
            return StepResult(name, "failed", detail=exc.message)
        if self._explicit and name in self._explicit:
            self._explicit.update(keys)
        return keys

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        """Let other steps use git while this thread waits for its command."""
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()

    def _preflight(self, order: list[str]) -> None:
        """Before anything runs: inputs that no step produces exist, and every command
        can be filled in with this run's parameters (and inputs, where they are known)."""
        units = self.planner.units
        file = self.project.workflow.path.name
        for name in order:
            if name in units.dynamic:
                continue  # its items are checked when it fans out
            step = units.steps[name]
            produced = [o for u in units.needs[name] for o in units.outputs_of(u)]
            made = [p for p in step.inputs if any(input_matches_output(p, o) for o in produced)]
            for pattern in step.inputs:
                if pattern in made:
                    continue
                found = self.project.worktree.expand([pattern])
                if found.dangling and not found.files:
                    link = found.dangling[0]
                    raise ConfigError(
                        f"{file}: step {name!r}: input {link!r} is a symlink to "
                        f"{os.readlink(self.project.repo.root / link)!r}, which does not exist"
                    )
                if not found.files:
                    what = (
                        "is an empty directory (no file in it to read)"
                        if not is_glob(pattern) and (self.project.repo.root / pattern).is_dir()
                        else "does not exist"
                    )
                    raise ConfigError(
                        f"{file}: step {name!r}: input {pattern!r} {what} and no step produces it"
                    )
            inputs = None  # {inputs[N]} unknown until the steps that make them have run
            if not made and interpolate.uses_input_index(step.run):
                inputs = self.project.worktree.expand(step.inputs).files
            values, item = format_values(step, self.params)
            why = interpolate.problem(step.run, values, inputs, step.outputs, item)
            if why is not None:
                of = f" (item {name})" if step.item is not None else ""
                raise ConfigError(f"{file}: steps.{step.name}.run{of}: {why}")

    # -- one step ------------------------------------------------------------------

    def _step(self, name: str) -> StepResult:
        self._batch.tick()  # sweep items' records not written for a while: now
        mode = self.options.mode
        if mode == "skip" and self._newer_than_inputs(name):
            return StepResult(name, "skipped", detail="outputs newer than inputs (skip mode)")
        evaluation = self.planner.evaluate(name)
        if mode == "ignore":
            return self._execute(evaluation, record=False)
        if evaluation.missing:
            return StepResult(
                name, "failed", detail=f"input {evaluation.missing[0]} does not exist"
            )
        if mode in ("default", "assert"):
            evaluation = self._look_elsewhere(evaluation)
        if mode == "assert":
            return self._assert(evaluation)
        if mode == "build":  # nothing else writes the outputs while they are recorded
            with self._writing_outputs(evaluation.step.outputs):
                return self._build(evaluation)
        if mode != "force" and evaluation.record is not None:
            return self._use_record(evaluation, evaluation.record)
        return self._execute(evaluation, record=True)

    def _look_elsewhere(self, evaluation: Evaluation) -> Evaluation:
        """On a local miss, ask `on_miss` (a remote) for the record, then look again."""
        on_miss = self.options.on_miss
        if on_miss is None or self.options.dry_run or evaluation.record is not None:
            return evaluation
        if evaluation.signature is None or not on_miss(evaluation.signature):
            return evaluation
        return self.planner.evaluate(evaluation.step.key)

    def _use_record(
        self, evaluation: Evaluation, stored: StoredRecord, locked: bool = False
    ) -> StepResult:
        name = evaluation.step.key
        mismatches = evaluation.mismatches()
        if name not in self._explicit and self.planner.removed_on_purpose(evaluation):
            return self._keep_in_store(evaluation, stored)
        if self.options.dry_run:
            self.planner.will_restore(evaluation)
            return StepResult(
                name, "would-restore" if mismatches else "skipped", evaluation.signature, stored
            )
        restored: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        if mismatches:
            self.reporter.step_started(name, "restoring")
            try:
                # The record may have been fetched: it is untrusted input (SPEC §7).
                assert evaluation.signature is not None
                vet(stored, evaluation.step.name, evaluation.step.outputs, evaluation.signature)
                done = self._restore_record(stored, name)  # checks the tree (store.verified)
            except UnsafeRecord as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                self.reporter.warning(f"step {name}: {exc.message}{hint}; running the step instead")
                if locked:  # already under the signature's lock (taking it again would block)
                    command = self._command(evaluation)
                    return self._run_command(evaluation, command, record=True, replace=True)
                return self._execute(evaluation, record=True, refused=stored.commit)
            restored, removed = tuple(done.written + done.dirs), tuple(done.removed)
            self._seal(evaluation, stored.commit, done.record.record.outputs)
        if mismatches or evaluation.step.item is None:
            # A sweep item's latest moves when its record is written or restored: a no-op
            # over a thousand items reads one ref per item (its signature's), not two.
            self.project.store.set_latest(stored, evaluation.step.item, evaluation.step.name)
        return StepResult(
            name,
            "restored" if mismatches else "skipped",
            evaluation.signature,
            stored,
            restored=restored,
            removed=removed,
        )

    def _restore_record(self, stored: StoredRecord, step: str) -> RestoreResult:
        """Make the step's outputs exactly the record, as `gitcache restore` does (one rule:
        content that no record of the step holds is never dropped: WorktreeConflict)."""
        from gitcache.restoring import restore_outputs

        hint = (
            f"`gitcache restore --force {step}` discards it, `gitcache run -s build {step}` "
            f"records it, `gitcache run -s force {step}` runs the step again"
        )
        return restore_outputs(
            self.project,
            stored,
            hint=hint,
            progress=lambda files, size: self._meter(step, "restoring", files, size),
            on_wait=self._waiting,
            unlocked=self._unlocked,
        )

    def _seal(self, evaluation: Evaluation, commit: str, outputs: Sequence[OutputFile]) -> None:
        """The step's declared outputs hold exactly `outputs`, record `commit`'s (just
        restored or recorded): a seal lets the next no-op trust them without reading
        the record (statcache.py)."""
        step, signature = evaluation.step, evaluation.signature
        if signature is None:
            return
        declared = {d: i for i, d in enumerate(step.outputs)}
        groups: list[list[tuple[str, str]] | None] = [[] for _ in step.outputs]
        parents: dict[str, int | None] = {}  # 50,000 files lie in a few directories
        for out in outputs:
            group = declared.get(out.path)
            if group is None:
                parent = out.path.rpartition("/")[0]
                if parent not in parents:
                    parents[parent] = _declared_index(parent, declared)
                group = parents[parent]
            if group is None:  # not under a declared output: nothing to vouch for
                return
            found = groups[group]
            assert found is not None
            found.append((out.path, out.blob))
        self.project.worktree.cache.seal(step.key, signature, commit, groups)

    def _keep_in_store(self, evaluation: Evaluation, stored: StoredRecord) -> StepResult:
        """Outputs removed on purpose stay out of the worktree until a step that reads them runs."""
        self.planner.will_restore(evaluation)
        removed = {m.path for m in evaluation.mismatches()}
        self._deferred.update({o.path: o for o in stored.record.outputs if o.path in removed})
        self._deferred_owners.update(dict.fromkeys(removed, tuple(evaluation.step.outputs)))
        if any(o.chunks is not None for o in stored.record.outputs if o.path in removed):
            self._deferred_chunks.update(self.project.store.verified(stored).chunks)
        detail = "outputs removed from the worktree, kept in the store"
        return StepResult(evaluation.step.key, "stored", evaluation.signature, stored, detail)

    def _restore(self, files: list[OutputFile], step: str) -> None:
        # Under the output locks of the steps that made them, as any restore.
        owners = {d for f in files for d in self._deferred_owners.get(f.path, ())}
        with self._writing_outputs(sorted(owners)):
            self.project.worktree.restore(
                files,
                self._meter(step, "restoring", len(files), sum(f.size for f in files)),
                ChunkIds(files=self._deferred_chunks),
            )
        self.project.removed.discard(f.path for f in files)

    def _meter(self, step: str, action: str, files: int, size: int | None = None) -> Meter:
        """A meter of one store or restore, told to the reporter if it listens."""
        tell = self.reporter.transfer if isinstance(self.reporter, TransferReporter) else None
        return Meter(step, action, files, size, tell)

    def _restore_inputs(self, evaluation: Evaluation) -> None:
        """Bring back removed upstream outputs that this step is about to read."""
        wanted = [
            self._deferred.pop(path)
            for path in evaluation.inputs
            if path in self._deferred and self.project.worktree.state(path) is None
        ]
        if wanted:
            self.reporter.step_started(evaluation.step.key, "restoring its inputs")
            self._restore(wanted, evaluation.step.key)

    def _execute(
        self, evaluation: Evaluation, record: bool, refused: str | None = None
    ) -> StepResult:
        step = evaluation.step
        if self.options.dry_run:
            self.planner.will_change(step.key)
            return StepResult(step.key, "would-run", evaluation.signature)
        self._restore_inputs(evaluation)
        command = self._command(evaluation)
        if not record or evaluation.signature is None:
            return self._run_command(evaluation, command, record=False)
        with ExitStack() as locks:
            spares = self._spares() if step.item is not None else None
            locks.enter_context(
                signature_lock(
                    self.project.repo.state_dir,
                    evaluation.signature,
                    self._waiting,
                    spares,
                    unlocked=self._unlocked,
                )
            )
            if self.options.mode != "force":
                # Another process may have recorded it while we waited for the lock.
                again = self.project.store.lookup(evaluation.signature, step=step.name)
                if again is not None and again.commit != refused:
                    fresh = self.planner.evaluate(step.key)
                    return self._use_record(fresh, again, locked=True)
            # A record we refused to restore is replaced by the one this run makes.
            replace = self.options.mode == "force" or refused is not None
            result = self._run_command(evaluation, command, record=True, replace=replace)
            if step.item is not None and result.record is not None:
                # Its refs wait in the batch (_record): its signature's lock until then.
                self._batch.hold(locks.pop_all())
            return result

    def _writing_outputs(self, outputs: Sequence[str]) -> AbstractContextManager[None]:
        """The locks of these declared outputs (locks.outputs_lock), the engine's own
        lock let go while waiting for another process."""
        if self.options.dry_run:
            return nullcontext()
        state_dir = self.project.repo.state_dir
        return outputs_lock(state_dir, outputs, self._waiting, unlocked=self._unlocked)

    def _waiting(self, message: str) -> None:
        """About to wait for a signature's lock another process holds: first write the
        refs of the batch, which releases the locks it keeps (that process may be
        waiting for one of them)."""
        self.reporter.warning(message)
        self._batch.flush()

    def _spares(self) -> LockSpares:
        """Where sweep items' lock files go when released, to lock the next ones with
        (a file linked costs a fraction of one created): a scratch directory."""
        if self._lock_spares is None:
            directory = self._scratches.enter_context(
                scratch_dir(self.project.repo.state_dir, _LOCKS_SCRATCH)
            )
            self._lock_spares = LockSpares(directory)
        return self._lock_spares

    def _command(self, evaluation: Evaluation) -> str:
        step = evaluation.step
        inputs = self.project.worktree.expand(step.inputs).files
        values, item = format_values(step, self.params)
        try:
            return interpolate.render(step.run, values, inputs, list(step.outputs), item)
        except interpolate.FIELD_ERRORS:
            # Checked before the run, so only inputs that a step just made can get here.
            why = interpolate.problem(step.run, values, inputs, step.outputs, item)
            raise ConfigError(f"step {step.key!r}: cannot fill in its command: {why}") from None

    def _run_command(
        self, evaluation: Evaluation, command: str, record: bool, replace: bool = False
    ) -> StepResult:
        # Imported here: a no-op run starts no process, so it need not import subprocess.
        from gitcache.runner import execute, shell_argv

        step = evaluation.step
        # Taken before the command runs: the code that ran, and require_clean refuses early.
        source = self._provenance() if record else None
        # No other gitcache writes these outputs until this run's record holds them (the
        # step is said to run once it may: a wait, or a refusal, comes first).
        with self._writing_outputs(step.outputs):
            self.reporter.step_started(step.key, "running")
            try:
                # A record holds exactly what this run made, and the command never writes
                # through a symlink that a record (perhaps a fetched one) put there.
                self.project.worktree.clear_outputs(step.outputs)
            except StepFailed as exc:
                return StepResult(step.key, "failed", evaluation.signature, detail=exc.message)
            for declared in step.outputs:  # as make users expect: the command only writes files
                parent = (self.project.repo.root / declared).parent
                try:
                    make_dirs(parent)  # no recursion: a declared path may nest deep
                except OSError as exc:  # a file where a directory must be, no permission...
                    where = parent.relative_to(self.project.repo.root).as_posix()
                    why = exc.strerror or str(exc)
                    detail = f"cannot make the directory {where!r} of output {declared!r}: {why}"
                    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
                        detail += " (a file is in the way: move it, or remove it)"
                    return StepResult(step.key, "failed", evaluation.signature, detail=detail)
            # The scratch directory goes whatever happens (a signal included); one left by a
            # process killed with -9 goes at the start of a later run (scratch.py).
            with self._scratch(step) as scratch:
                # After the inputs were hashed, before the command starts: an input whose
                # mtime is not older may have been rewritten since within one tick. (A step
                # without inputs has none to check: no temporary file to read the clock.)
                started = statcache.filesystem_now(scratch) if record and step.signed_inputs else 0
                failures: list[Exception] = []
                try:
                    with self._unlocked():
                        execution = execute(
                            shell_argv(step.spec.shell, command),
                            self.project.repo.root,
                            scratch,
                            lambda stream, data: self.reporter.output(step.key, stream, data),
                            env=self._command_env(evaluation, record),
                            children=self._children,
                            while_running=lambda: self._while_command_runs(
                                failures, flush=evaluation.step.item is None
                            ),
                            held_open=lambda: self.reporter.warning(
                                f"step {step.key}: its command exited, but a process it "
                                "started still holds its output open; waiting for that "
                                "process to end (redirect a background job's output, "
                                "or `wait` for it)"
                            ),
                        )
                except OSError as exc:  # the shell could not be started: E2BIG for a huge command
                    return self._cannot_start(evaluation, command, exc)
                if failures:  # writing earlier items' records failed (a full disk, say)
                    raise failures[0]
                # An item's capture files serve its thread's next item (the runner truncates
                # them) and go with the directory at the end of the run: no unlink per item.
                return self._after_command(
                    evaluation, command, execution, record, replace, source, started
                )

    def _while_command_runs(self, failures: list[Exception], flush: bool) -> float | None:
        """What the running command's time can hide: writing the records of earlier
        sweep items (RefBatch.defer), deflating their objects into the pack, and their
        refs when the batch is due, when the first has waited `max_wait`, or when the
        command is not an item's (`flush`). Returns when to be called again (the runner
        does, while the command runs): a long command does not keep the refs of the
        items before it unwritten, which a kill -9 meanwhile would lose. Skipped while
        another thread uses git (-j N); an error is kept for when the command ends."""
        batch = self._batch
        # A signal now would leave the engine's lock taken (and the run stuck).
        with signals_held():
            if not self._lock.acquire(blocking=False):
                return batch.max_wait  # another thread's turn: try again later
            try:
                if flush or batch.due:
                    batch.flush()
                else:
                    batch.tick()
                    batch.run_deferred()
                    self.project.repo.pack_waiting_objects()
            except Exception as exc:
                failures.append(exc)
                return None
            finally:
                self._lock.release()
        return batch.wait_left()

    def _command_env(self, evaluation: Evaluation, record: bool) -> dict[str, str]:
        """The command's environment: ours, naming the locks we hold while it runs (the
        objects lock; the signature's when recording; its outputs'), so a gitcache it
        starts that would wait for one fails at once (locks.py)."""
        state_dir = self.project.repo.state_dir
        held = [locks.objects_lock_path(state_dir)]
        if record and evaluation.signature is not None:
            held.append(locks.signature_lock_path(state_dir, evaluation.signature))
        outputs = evaluation.step.outputs
        held += locks.output_lock_paths(state_dir, outputs)
        if self._environ is None:  # decoding every variable costs ~0.1 ms per command
            self._environ = dict(os.environ)
        return {**self._environ, **locks.held_env(held, outputs)}

    def _cannot_start(self, evaluation: Evaluation, command: str, exc: OSError) -> StepResult:
        size = len(command.encode())
        hint = "; pass large values through a file" if exc.errno == errno.E2BIG else ""
        return StepResult(
            evaluation.step.key,
            "failed",
            evaluation.signature,
            detail=f"cannot start its command ({size:,} bytes): {exc.strerror or exc}{hint}",
        )

    def _after_command(
        self,
        evaluation: Evaluation,
        command: str,
        execution: Execution,
        record: bool,
        replace: bool,
        source: provenance.Provenance | None,
        started: int,
    ) -> StepResult:
        step = evaluation.step
        if self._interrupted.is_set():
            return StepResult(step.key, "failed", evaluation.signature, detail="interrupted")
        if execution.exit_status != 0:
            self._sources.forget()  # it may have written tracked files before it failed
            return StepResult(
                step.key,
                "failed",
                evaluation.signature,
                detail=f"command exited with status {execution.exit_status}",
                exit_status=execution.exit_status,
            )
        changed = self._changed_input(evaluation, started) if record else None
        if changed is not None:
            return StepResult(
                step.key,
                "failed",
                evaluation.signature,
                detail=f"input {changed} changed while the step ran; its outputs were not recorded",
                exit_status=0,
            )
        outputs = self._collect_outputs(evaluation)
        if isinstance(outputs, StepResult):
            return outputs
        self.project.removed.discard(o.path for o in outputs)  # they are back on disk
        if self.project.repo.tracks_any([o.path for o in outputs]):
            self._sources.forget()  # the next step's provenance sees them changed
        if not record:
            self.planner.will_change(step.key)
            return StepResult(step.key, "ran", evaluation.signature, exit_status=0)
        stored = self._record(
            evaluation,
            command,
            outputs,
            execution.logs,
            execution.started_at,
            execution.duration,
            source,
            replace,
        )
        return StepResult(step.key, "ran", evaluation.signature, stored, exit_status=0)

    def _changed_input(self, evaluation: Evaluation, started: int) -> str | None:
        """An input whose content is not what the signature was computed from, if any.

        The record would otherwise be filed under the old inputs' signature while
        holding what the new ones made. Stats only, unless a stat moved or the file's
        mtime is not older than `started` (the file system's clock read after the inputs
        were hashed, before the command started): then hashed, since a rewrite within
        one timestamp tick keeps the stat (git's racily-clean rule).
        """
        worktree = self.project.worktree
        now = worktree.expand(evaluation.step.signed_inputs)
        components = evaluation.components
        executable = set(components.executable or ()) if components is not None else set()
        for path in sorted(set(now.files) | set(now.dangling) | set(evaluation.inputs)):
            state = worktree.state(path, follow=True, racy_from=started)
            if state is None:
                if path in evaluation.inputs:
                    return path
                continue
            edited = state.oid != evaluation.inputs.get(path)
            chmod = self.planner.exec_bits and (state.mode == MODE_EXEC) != (path in executable)
            if edited or chmod:
                return path
        return None

    def _collect_outputs(
        self, evaluation: Evaluation, missing: str = "was not produced", ran: bool = True
    ) -> list[OutputFile] | StepResult:
        """Store every output file as a blob; a declared output that is missing fails the step.

        A declared output that is an empty directory is an output with no files. Unless
        a command has just written them (`ran`), the outputs are taken as the
        evaluation walked them (else walked now), and files the stat cache vouches for
        whose blobs are stored are not read again (Worktree.store_walked).
        """
        step = evaluation.step
        worktree = self.project.worktree
        names: list[list[str] | None] = []
        walked = None
        if ran:
            names = [worktree.output_files(declared) for declared in step.outputs]
        else:
            walked = evaluation.walked
            if walked is None:
                walked = worktree.output_walk(step.outputs)
        groups: Sequence[Sequence[object] | None] = names if walked is None else walked
        for declared, group in zip(step.outputs, groups, strict=True):
            if group is None:
                return StepResult(
                    step.key,
                    "failed",
                    evaluation.signature,
                    detail=f"declared output {declared} {missing}",
                )
        repo = self.project.repo
        files: list[OutputFile] = []
        meter = self._meter(step.key, "storing", sum(len(group or ()) for group in groups))

        def write_file(path: Path) -> StoredFile:
            return repo.write_blob_file(path, meter.add)

        # The objects of earlier sweep items, whose refs wait in the batch, wait in the
        # writer too: a failure here drops only what this step stored.
        mark = repo.objects_mark()
        try:
            if walked is None:
                for rel in (rel for group in names for rel in group or ()):
                    files.append(worktree.store_output(rel, write_file, repo.write_blob))
                    meter.file_done()
            else:
                # The evaluation's states, if it took them from this walk: the files no
                # stat cache row vouched for were read then.
                states = evaluation.outputs if evaluation.walked is not None else None
                record = evaluation.record
                recorded = {} if record is None else {o.path: o for o in record.record.outputs}
                held = record is not None and self.project.store.sizes_read(record)
                for found in walked:
                    files += worktree.store_walked(
                        found or (),
                        write_file,
                        repo.write_blob,
                        repo.stores,
                        states,
                        recorded,
                        meter.file_done,
                        held,
                    )
        except (StepFailed, UnreadableFile) as exc:
            # An output that cannot be recorded (a fifo the command made, a file it
            # keeps writing) fails its step, not the run: `-k` goes on with others.
            # The blobs stored so far wait in the writer: no record will name them.
            repo.discard_objects(mark)
            return StepResult(step.key, "failed", evaluation.signature, detail=exc.message)
        except BaseException:  # a file that kept changing, a full disk, Ctrl-C
            repo.discard_objects(mark)
            raise
        meter.finish()
        return files

    def _record(
        self,
        evaluation: Evaluation,
        command: str,
        outputs: list[OutputFile],
        logs: dict[str, Any],
        started_at: str,
        duration: float,
        source: provenance.Provenance | None = None,
        replace: bool = False,
        like: StoredRecord | None = None,
    ) -> StoredRecord:
        assert evaluation.components is not None and evaluation.signature is not None
        source = source or self._provenance()
        record = Record(
            step=evaluation.step.name,
            signature=evaluation.signature,
            components=evaluation.components,
            command=command,
            outputs=outputs,
            source_commit=source.source_commit,
            dirty=source.dirty,
            dirty_files=list(source.dirty_files),
            started_at=started_at,
            duration=round(duration, 6),
            exit_status=0,
            host=_hostname(),
            gitcache_version=__version__,
            item=None if evaluation.step.item is None else encode(evaluation.step.item),
        )
        new = NewRecord(record, logs, source.tree_entries(), like)
        # force replaces the signature's record; build records what the worktree holds now;
        # a record we refused to restore is replaced by the one this run made.
        replace = replace or self.options.mode in ("force", "build")
        # A sweep item's refs wait in the batch (one transaction per hundred items).
        batch = self._batch if evaluation.step.item is not None else None
        stored = self.project.store.write(
            new,
            source.source_commit,
            replace=replace,
            batch=batch,
            then=lambda commit: self._seal(evaluation, commit, outputs),
        )
        if batch is not None:
            # Its record may name blobs only a removed record holds (found stored, not
            # written again): no `gc --prune` until the batch's refs are written.
            held = ExitStack()
            held.enter_context(writing_objects(self.project.repo.state_dir, None))
            batch.hold(held)
        return stored

    def _scratch(self, step: Step) -> AbstractContextManager[Path]:
        """Where a command's output is captured (scratch.py): for a sweep item, a
        directory its thread keeps for its next item, removed at the end of the run."""
        state_dir = self.project.repo.state_dir
        if step.item is None:
            return scratch_dir(state_dir, _scratch_name(step))
        thread = threading.get_ident()
        path = self._item_scratch.get(thread)
        if path is None:
            path = self._scratches.enter_context(
                scratch_dir(state_dir, f"{_ITEMS_SCRATCH}-{thread}")
            )
            self._item_scratch[thread] = path
        return nullcontext(path)

    def _provenance(self) -> provenance.Provenance:
        return self._sources.capture()

    # -- the modes that never run ------------------------------------------------------

    def _assert(self, evaluation: Evaluation) -> StepResult:
        name = evaluation.step.key
        if evaluation.record is None:
            return StepResult(
                name, "mismatch", evaluation.signature, detail=self._why_no_record(evaluation)
            )
        mismatches = evaluation.mismatches()
        if self.planner.removed_on_purpose(evaluation):
            self.planner.will_restore(evaluation)
            detail = "outputs removed from the worktree, kept in the store"
            return StepResult(name, "verified", evaluation.signature, evaluation.record, detail)
        if mismatches:
            return StepResult(
                name,
                "mismatch",
                evaluation.signature,
                evaluation.record,
                mismatches=tuple(mismatches),
            )
        return StepResult(name, "verified", evaluation.signature, evaluation.record)

    def _why_no_record(self, evaluation: Evaluation) -> str:
        signature = (evaluation.signature or "")[:12]
        latest = self.project.store.latest(evaluation.step.name, evaluation.step.item)
        if latest is None or evaluation.components is None:
            return f"no record for signature {signature}; the step has never been recorded"
        changes = describe_changes(latest.record.components, evaluation.components)
        since = "; ".join(changes) or "its signature differs"
        return f"no record for signature {signature}; since record {latest.short}: {since}"

    def _build(self, evaluation: Evaluation) -> StepResult:
        name = evaluation.step.key
        if evaluation.record is not None and not evaluation.mismatches():
            return StepResult(name, "skipped", evaluation.signature, evaluation.record)
        if self.planner.removed_on_purpose(evaluation):
            assert evaluation.record is not None
            return self._keep_in_store(evaluation, evaluation.record)
        if self.options.dry_run:
            return StepResult(name, "would-record", evaluation.signature)
        outputs = self._collect_outputs(
            evaluation,
            "does not exist (build mode records existing outputs; it runs nothing)",
            ran=False,
        )
        if isinstance(outputs, StepResult):
            return outputs
        self.project.removed.discard(o.path for o in outputs)
        command = self._command(evaluation)
        with scratch_dir(self.project.repo.state_dir, _scratch_name(evaluation.step)) as scratch:
            logs = {s: scratch / s for s in ("stdout", "stderr")}
            for path in logs.values():
                path.write_bytes(b"")
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
            # The outputs that still hold what the record compared with says are its
            # OutputFile objects (store_walked): its tree is edited where they differ.
            like = evaluation.record
            stored = self._record(evaluation, command, outputs, logs, stamp, 0.0, like=like)
        return StepResult(name, "recorded", evaluation.signature, stored)

    def _newer_than_inputs(self, name: str) -> bool:
        """skip mode: every output exists and none is older than any input (stat only)."""
        step = self.planner.units.steps[name]
        worktree = self.project.worktree
        outputs: list[str] = []
        for declared in step.outputs:
            files = worktree.output_files(declared)
            if not files:
                return False
            outputs += files
        if not outputs:
            return False
        inputs = worktree.expand(step.signed_inputs)
        if inputs.missing:
            return False
        root = self.project.repo.root
        try:
            out_times = [os.stat(root / p).st_mtime_ns for p in outputs]
            in_times = [os.stat(root / p).st_mtime_ns for p in inputs.files]
        except OSError:
            return False
        return not in_times or min(out_times) >= max(in_times)


def _declared_index(path: str, declared: Mapping[str, int]) -> int | None:
    """The index of the declared output that is `path` or holds it."""
    while True:
        found = declared.get(path)
        if found is not None:
            return found
        cut = path.rfind("/")
        if cut < 0:
            return None
        path = path[:cut]


def _scratch_name(step: Step) -> str:
    """A directory name for a unit's captured logs: items of one step run side by side."""
    return step.name if step.item is None else f"{step.name}-{item_id(step.item)}"


_ITEMS_SCRATCH = "items"  # tmp/<pid>-items-<thread>: one per thread, for every item it runs
_LOCKS_SCRATCH = "locks"  # tmp/<pid>-locks: the run's spare signature lock files


def _hostname() -> str:
    import socket  # here: only a run that records needs it

    return socket.gethostname()

"""`@gitcache.step`: a Python function as a recorded, cached step (docs/python.md).

Calling a step computes its signature (code, validated arguments, env, versions),
then: a result this process already has is returned at once (the memo); a record
of the signature is loaded (outputs restored if needed); otherwise the function
runs under the signature's lock and its result is recorded as a git commit under
`refs/gitcache/`, exactly like a shell step's record (SPEC §4, §8).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import os
import re
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Generic, ParamSpec, TypeVar, overload

from gitcache import __version__
from gitcache.errors import UnsafeRecord
from gitcache.locks import (
    announcing,
    objects_lock_path,
    output_lock_paths,
    outputs_lock,
    signature_lock,
    signature_lock_path,
    writing_objects,
)
from gitcache.python import quick, results
from gitcache.python.code import settle_all
from gitcache.python.errors import ResultError, StepDefinitionError
from gitcache.python.files import File
from gitcache.python.session import Session, session_for, warn
from gitcache.python.signing import (
    Call,
    Signer,
    StepOptions,
    components_signature,
    version_of,
)
from gitcache.record import OutputFile, PythonRun, Record
from gitcache.stepnames import ref_component_problem
from gitcache.store import StoredRecord
from gitcache.trust import check_outputs, check_signature, check_step

# Not typing.TYPE_CHECKING (see gitcache/__init__.py). What only a miss needs (the
# provenance snapshot, which loads the workflow file's parser; output capture; the
# scratch directory) is imported by the miss: a hit in a new process does not pay it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from gitcache import provenance

P = ParamSpec("P")
R = TypeVar("R")

_FAST_TYPES = (int, float, str, bool, type(None))
_SCRATCH_NUMBERS = itertools.count()


_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StepFunction(Generic[P, R]):
    """A decorated function. Call it as the function; `.task(...)`, `.explain(...)`."""

    def __init__(self, func: Callable[P, R], options: StepOptions) -> None:
        _check_definition(func, options.name)
        assert isinstance(func, types.FunctionType)
        functools.update_wrapper(self, func)
        self.__gitcache_function__ = func
        self.options = options
        self.signer = Signer(func, options)
        for name in options.ignore:
            if name not in self.signer.parameters:
                raise StepDefinitionError(
                    f"step {options.name}: ignore={list(options.ignore)!r} names {name!r}, "
                    "which is not a parameter"
                )
        for name in options.env:  # as in gitcache.toml: a name the environment can hold
            if not isinstance(name, str) or _ENV_NAME.match(name) is None:
                raise StepDefinitionError(
                    f"step {options.name}: env={list(options.env)!r}: {name!r} is not an "
                    "environment variable name (letters, digits and _, not first a digit)"
                )
        self._memo: dict[str, Any] = {}
        # Signatures whose call saw an input file change: their value is not the
        # signature's, so it is neither recorded nor remembered.
        self._unsettled: set[str] = set()
        # Plain arguments (numbers, strings) -> signature, while the code is unchanged:
        # a repeated call skips validation and hashing.
        self._fast: dict[tuple[Any, ...], str] = {}
        self._fast_code: object = None

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"<gitcache step {self.name}>"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return functools.partial(self, instance)

    # -- calling -----------------------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        key = self._fast_key(args, kwargs)
        if key is not None:
            signature = self._fast.get(key)
            if signature is not None and signature in self._memo:
                return self._memo[signature]  # type: ignore[no-any-return]
        session = session_for(Path.cwd())
        call = self.sign(session, args, kwargs)
        if key is not None:
            self._fast[key] = call.signature
        if call.signature in self._memo:
            return self._memo[call.signature]  # type: ignore[no-any-return]
        value = self._resolve(session, call)
        self.remember(call.signature, value)
        return value  # type: ignore[no-any-return]

    def remember(self, signature: str, value: Any) -> None:
        """Keep a call's value in memory, unless its inputs changed while it ran."""
        if signature in self._unsettled:
            self._unsettled.discard(signature)
        else:
            self._memo[signature] = value

    def _fast_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """A memo key for calls whose arguments are all plain scalars, else None."""
        code = self.signer._code
        if code is None or (code.document is not None and not code.document.still_valid()):
            return None
        if code is not self._fast_code:
            self._fast.clear()
            self._fast_code = code
        # Only where the hint is the value's own kind: a str given for a File (or a
        # Path, an enum...) is coerced into something whose content may change.
        kinds = self.signer.plain_kinds()
        names = list(self.signer.parameters)
        if len(args) > len(names):
            return None
        parts: list[Any] = []
        for name, value in [*zip(names, args, strict=False), *sorted(kwargs.items())]:
            part = _fast_part(value)
            if part is None or part[0] not in kinds.get(name, ()):
                return None
            parts.append((name, part))
        if self.options.env:
            parts.append(tuple(os.environ.get(n) for n in self.options.env))
        return tuple(parts)

    def sign(self, session: Session, args: Sequence[Any], kwargs: dict[str, Any]) -> Call:
        return self.sign_bound(session, self.signer.bind(args, kwargs))

    def sign_bound(self, session: Session, arguments: dict[str, Any]) -> Call:
        """The call's signature, from arguments already bound and validated."""
        with session.lock:
            return self.signer.sign(arguments, session.root, _blob_reader(session), session.forms)

    def _resolve(self, session: Session, call: Call) -> Any:
        if not self.options.store:
            return self._run(_upstream_results(call.arguments))
        if not call.outputs:
            value = self._quick_hit(session, call)
            if value is not _MISS:
                return value
        # No `gitcache gc --prune` between reading a record (or writing the provenance
        # snapshot) and the refs of the record this call writes (locks.py).
        with writing_objects(session.repo.state_dir, warn):
            return self._lookup_or_run(session, call)

    def _lookup_or_run(self, session: Session, call: Call) -> Any:
        with session.lock:
            stored = session.store.lookup(call.signature, step=self.name)
            if stored is not None:
                loaded = self._use(session, call, stored)
                if loaded is not _MISS:
                    return loaded
        with signature_lock(session.repo.state_dir, call.signature, warn):
            refused: str | None = None
            with session.lock:
                stored = session.store.lookup(call.signature, step=self.name)
                if stored is not None:  # recorded by another process while we waited
                    loaded = self._use(session, call, stored)
                    if loaded is not _MISS:
                        return loaded
                    refused = stored.commit
                elif session.remote_lookup is not None and session.remote_lookup(call.signature):
                    # Fetched from the remote (as `gitcache run --remote` does for shell
                    # steps): vetted and validated like any record.
                    stored = session.store.lookup(call.signature, step=self.name)
                    if stored is not None:
                        loaded = self._use(session, call, stored)
                        if loaded is not _MISS:
                            return loaded
                        refused = stored.commit
                from gitcache import provenance

                source = provenance.capture(session.repo, session.config)
            # Only now are upstream tasks run (or loaded): a recorded call never needs them.
            arguments = _upstream_results(call.arguments)
            with self._writing_outputs(session, call):
                return self._run_and_record(session, call, arguments, source, refused)

    @contextlib.contextmanager
    def _writing_outputs(self, session: Session, call: Call) -> Iterator[None]:
        """As for shell steps: no other process writes the call's declared outputs
        until its record holds them (none to lock for a step without outputs)."""
        if not call.outputs:
            yield
            return
        state_dir = session.repo.state_dir
        with (
            outputs_lock(state_dir, call.outputs, warn),
            announcing(output_lock_paths(state_dir, call.outputs)),
        ):
            yield

    def _run(self, arguments: dict[str, Any]) -> Any:
        try:
            value = self.__gitcache_function__(**arguments)
        finally:
            settle_all()
        return self.signer.check_result(value)

    # -- a hit -------------------------------------------------------------------------------

    def _quick_hit(self, session: Session, call: Call) -> Any:
        """The recorded result read without libgit2 (python/quick.py), or _MISS: no
        record, or one to read the full way (which says what is wrong with it). Holds no
        objects lock, so it writes nothing: an object `gitcache gc` removes meanwhile is
        only a failed read. A record that is not yet the step's latest is read the full
        way too, which moves the pointer under the lock (never to a pruned commit)."""
        found = quick.read_record(session.dirs, call.signature)
        if found is None:
            return _MISS
        stored = found.stored
        if not quick.is_latest(session.dirs, stored.record.step, stored.commit):
            return _MISS
        try:
            return self._load(session, call, stored, found.read)
        except (UnsafeRecord, ResultError, quick.NotQuick):
            return _MISS

    def _use(self, session: Session, call: Call, stored: StoredRecord) -> Any:
        """The recorded result (outputs restored), or _MISS if the record cannot be used."""
        where = f"record {stored.commit[:12]} of step {self.name}"
        try:
            read = results.commit_reader(session.repo, stored.commit, where)
            value = self._load(session, call, stored, read)
            self._restore_locked(session, stored)
        except (UnsafeRecord, ResultError) as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            warn(f"step {self.name}: cannot use {where}: {exc.message}{hint}; running it instead")
            return _MISS
        session.store.set_latest(stored)
        return value

    def _load(
        self, session: Session, call: Call, stored: StoredRecord, read: results.Reader
    ) -> Any:
        """The record's result, validated (raises UnsafeRecord, ResultError)."""
        record = stored.record
        where = f"record {stored.commit[:12]} of step {self.name}"
        if record.python is None or record.components.kind != "python":
            raise UnsafeRecord(f"{where} is not a Python step's record")
        # trust.vet, the components hashed as the call's were (`Call.document`)
        if record.signature != call.signature:
            check_signature(stored, call.signature)  # raises, saying so
        check_step(stored, self.name, call.signature)
        if components_signature(record.components) != call.signature:
            raise UnsafeRecord(
                f"record {stored.commit[:12]}: its components do not hash to its signature "
                f"{call.signature[:12]}"
            )
        check_outputs(stored, self.name, call.outputs)
        trusted = record.python.result == "pickle" and stored.commit in results.trusted_pickles(
            session.state_dir
        )
        raw, _ = results.load(read, record.python.result, trusted, where)
        return self.signer.check_result(raw)

    def _restore_outputs(self, session: Session, stored: StoredRecord) -> None:
        """The declared outputs hold exactly the record's files (the rule shell steps and
        `gitcache restore` follow): WorktreeConflict rather than drop unrecorded content."""
        record = stored.record
        if not record.components.outputs:
            return
        from gitcache.restoring import recorded_blobs

        plan = session.worktree.plan_restore(
            record.outputs,
            record.components.outputs,
            lambda: recorded_blobs(session.store, self.name),
            step=self.name,
            hint=f"`gitcache restore --force {stored.commit[:12]}` discards it; or move it away",
        )
        from gitcache.worktree import ChunkIds

        if any(o.chunks is not None for o in plan.write):
            stored = session.store.verified(stored)
        session.worktree.apply(plan, chunks=ChunkIds(stored.commit, stored.chunks))

    def _restore_locked(self, session: Session, stored: StoredRecord) -> None:
        """`_restore_outputs` under the outputs' locks, as every restore."""
        declared = stored.record.components.outputs
        if not declared:
            return
        with outputs_lock(session.repo.state_dir, declared, warn):
            self._restore_outputs(session, stored)

    # -- a miss ------------------------------------------------------------------------------

    def _run_and_record(
        self,
        session: Session,
        call: Call,
        arguments: dict[str, Any],
        source: provenance.Provenance,
        refused: str | None,
    ) -> Any:
        from datetime import UTC, datetime

        from gitcache.python.capture import captured
        from gitcache.scratch import scratch_dir

        root = session.root
        # As for shell steps: never write through a symlink a record made, and record
        # only what this call writes.
        session.worktree.clear_outputs(call.outputs)
        for declared in call.outputs:
            (root / declared).parent.mkdir(parents=True, exist_ok=True)
        # Unique per call: a step may call another step inside its function.
        name = f"{threading.get_ident()}-{next(_SCRATCH_NUMBERS)}-py"
        started = datetime.now(UTC).isoformat(timespec="milliseconds")
        t0 = time.monotonic()
        with scratch_dir(session.repo.state_dir, name) as scratch:
            state_dir = session.repo.state_dir
            held = [objects_lock_path(state_dir), signature_lock_path(state_dir, call.signature)]
            with captured(scratch) as logs, announcing(held):
                try:
                    value = self.__gitcache_function__(**arguments)
                finally:
                    settle_all()
            duration = time.monotonic() - t0
            value = self.signer.check_result(value)
            if call.files and self.sign_bound(session, call.arguments).signature != call.signature:
                # A file argument changed while the function ran: a record filed under the
                # old contents' signature would hold what the new ones made (issue 8).
                names = ", ".join(sorted(call.files.values()))
                warn(
                    f"step {self.name}: an input file ({names}) changed while it ran; "
                    "its result was not recorded"
                )
                self._unsettled.add(call.signature)
                return value
            encoded = results.encode(value, self.options.allow_pickle)
            if encoded.kind == "json":  # this call returns what a hit will load
                value = self.signer.check_result(results.reload(encoded))
            with session.lock:
                stored = self._record(
                    session, call, encoded, logs, source, started, duration, refused
                )
                if encoded.kind == "pickle":
                    results.trust_pickle(session.repo.state_dir, stored.commit)
            # The stat cache and record index are saved at exit (they are caches: a
            # process that dies first only costs reading things again).
        return value

    def _record(
        self,
        session: Session,
        call: Call,
        encoded: results.Encoded,
        logs: dict[str, Path],
        source: provenance.Provenance,
        started: str,
        duration: float,
        refused: str | None,
    ) -> StoredRecord:
        import socket

        from gitcache.store import NewRecord

        outputs = self._collect_outputs(session, call.outputs)
        entries = results.write(session.repo, encoded)
        record = Record(
            step=self.name,
            signature=call.signature,
            components=call.components,
            command=self.describe_call(call),
            outputs=outputs,
            source_commit=source.source_commit,
            dirty=source.dirty,
            dirty_files=list(source.dirty_files),
            started_at=started,
            duration=round(duration, 6),
            exit_status=0,
            host=socket.gethostname(),
            gitcache_version=__version__,
            python=self.run_info(session, call, encoded.kind),
        )
        new = NewRecord(record, logs, [*entries, *source.tree_entries()])
        return session.store.write(new, source.source_commit, replace=refused is not None)

    def _collect_outputs(self, session: Session, declared: list[str]) -> list[OutputFile]:
        from gitcache.python.errors import ResultError

        worktree = session.worktree
        repo = session.repo
        files: list[OutputFile] = []
        for path in declared:
            found = worktree.output_files(path)
            if found is None:
                raise ResultError(f"step {self.name}: declared output {path} was not produced")
            for rel in found:
                stored = worktree.store_output(
                    rel, lambda p: results.store_file(repo, p), repo.write_blob
                )
                files.append(stored)
        return files

    def run_info(self, session: Session, call: Call, kind: str) -> PythonRun:
        func = self.__gitcache_function__
        document = call.code.document
        packages = sorted(document.packages) if document is not None else []
        key = document.main if document is not None else f"?:{func.__qualname__}"
        where = key.rsplit(":", 1)[0]
        from gitcache.python import tasks

        return PythonRun(
            function=key,
            module=func.__module__,
            file=None if where.startswith("<") or where == "?" else where,
            python=version_of("python") or "",
            packages={name: version_of(name) for name in packages},
            files=call.files,
            arguments=tasks.dump_arguments(self, call.arguments, inline_arrays=False),
            result="pickle" if kind == "pickle" else "json",
        )

    def describe_call(self, call: Call) -> str:
        import reprlib

        shown = reprlib.Repr()
        shown.maxstring = shown.maxother = 40
        args = ", ".join(f"{k}={shown.repr(v)}" for k, v in call.arguments.items())
        return f"{self.__gitcache_function__.__qualname__}({args})"

    # -- lazy forms ------------------------------------------------------------------------------

    def task(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """The call, not made: `.run()`, `.save(DIR)`, `.signature`; an argument of other steps."""
        from gitcache.python.tasks import Task

        return Task(self, self.signer.bind(args, kwargs))

    def explain(self, *args: P.args, **kwargs: P.kwargs) -> list[str]:
        """What differs between this call and the step's latest record (also printed)."""
        from gitcache.python.explain import explain

        return explain(self, args, kwargs)


def _upstream_results(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments with each task replaced by its result (run or loaded)."""
    return {
        name: (value.run() if getattr(value, "__gitcache_signature__", None) else value)
        for name, value in arguments.items()
    }


def _fast_part(value: Any) -> Any:
    """A plain value with its type (1, 1.0 and True differ), or a File with its stat."""
    kind = type(value)
    if kind in _FAST_TYPES:
        return (kind, value)
    if kind is File:
        try:
            st = os.stat(value.path)
        except OSError:
            return None
        return (kind, value.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return None


class _Miss:
    pass


_MISS: Any = _Miss()


def _blob_reader(session: Session) -> Callable[[Path], str]:
    """A file's blob id: through the stat cache inside the worktree, hashed outside it."""
    root = session.root

    def blob_of(path: Path) -> str:
        full = Path(os.path.abspath(path))
        try:
            rel = full.relative_to(root).as_posix()
        except ValueError:
            rel = None
        if rel is not None and not rel.startswith(".git/"):
            state = session.worktree.state(rel, follow=True)  # a File counts by its content
            if state is not None:
                return state.oid
        return session.repo.hash_file(full)

    return blob_of


def _check_definition(func: Any, name: str) -> None:
    """Refuse, at decoration, what can never be a step."""
    what = getattr(func, "__qualname__", repr(func))
    if not isinstance(func, types.FunctionType):
        raise StepDefinitionError(f"@gitcache.step: {what} is not a function")
    if func.__name__ == "<lambda>":
        raise StepDefinitionError(
            "@gitcache.step: a lambda cannot be a step", hint="define it with def"
        )
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise StepDefinitionError(
            f"@gitcache.step: {what} is a generator function; a step must return its result",
            hint="return a list, or use store=False on a function that returns the iterator",
        )
    if inspect.iscoroutinefunction(func):
        raise StepDefinitionError(
            f"@gitcache.step: {what} is an async function; steps are plain functions"
        )
    why = ref_component_problem(name)
    if why is not None:
        raise StepDefinitionError(f"@gitcache.step: invalid step name {name!r}: {why}")
    signature = inspect.signature(func)
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise StepDefinitionError(
                f"@gitcache.step: {what}: *{param.name} parameters are not supported"
            )
        if param.annotation is inspect.Parameter.empty:
            raise StepDefinitionError(
                f"@gitcache.step: {what}: parameter {param.name!r} has no type hint",
                hint="every parameter and the return value need one",
            )
    if signature.return_annotation is inspect.Signature.empty:
        raise StepDefinitionError(
            f"@gitcache.step: {what}: the return value has no type hint (-> ...)",
            hint="every parameter and the return value need one",
        )


def _default_name(func: Any) -> str:
    qualname = str(getattr(func, "__qualname__", ""))
    if ref_component_problem(qualname) is None:
        return qualname
    return str(getattr(func, "__name__", "step"))


@overload
def step(func: Callable[P, R], /) -> StepFunction[P, R]: ...


@overload
def step(
    *,
    version: str | None = None,
    ignore: Sequence[str] = (),
    env: Sequence[str] = (),
    versions: Sequence[str] = (),
    outputs: Sequence[str] = (),
    store: bool = True,
    allow_pickle: bool = False,
    name: str | None = None,
) -> Callable[[Callable[P, R]], StepFunction[P, R]]: ...


def step(
    func: Callable[P, R] | None = None,
    /,
    *,
    version: str | None = None,
    ignore: Sequence[str] = (),
    env: Sequence[str] = (),
    versions: Sequence[str] = (),
    outputs: Sequence[str] = (),
    store: bool = True,
    allow_pickle: bool = False,
    name: str | None = None,
) -> StepFunction[P, R] | Callable[[Callable[P, R]], StepFunction[P, R]]:
    """Make a function a step: `@gitcache.step` or `@gitcache.step(option=...)`.

    - `version`: replaces the code component (you say when the code changed);
    - `ignore`: parameters that do not enter the signature (verbosity, paths for logs);
    - `env`: environment variables whose values do;
    - `versions`: distributions (or `"python"`) whose versions do;
    - `outputs`: files the function writes, `{argument}` filled in; stored and restored;
    - `store=False`: results kept in this process only (no record);
    - `allow_pickle`: arguments and results with no other form are pickled;
    - `name`: the step's name in records (default: the function's qualified name).
    """

    def decorate(f: Callable[P, R]) -> StepFunction[P, R]:
        for label, value in (("ignore", ignore), ("env", env), ("versions", versions)):
            if isinstance(value, str):
                raise StepDefinitionError(f"@gitcache.step: {label}= takes a list of names")
        if isinstance(outputs, str):
            raise StepDefinitionError("@gitcache.step: outputs= takes a list of paths")
        options = StepOptions(
            name=name or _default_name(f),
            version=version,
            ignore=tuple(ignore),
            env=tuple(env),
            versions=tuple(versions),
            outputs=tuple(outputs),
            store=store,
            allow_pickle=allow_pickle,
        )
        return StepFunction(f, options)

    if func is not None:
        return decorate(func)
    return decorate

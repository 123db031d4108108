"""Tasks: calls of a step not made yet, and the task files that describe them.

`f.task(...)` validates the arguments and returns a Task: `.signature` (computed
without running anything), `.run()` (the result: loaded if recorded, else computed
and recorded), `.save(DIR)` (a self-contained JSON task file). A task passed as an
argument of another step counts there by its signature, so a downstream step whose
record exists is loaded without running, or even loading, its upstream.

A task file (docs/format.md, "Task files"):

    {"gitcache_task": 1, "step": "analyze",
     "function": {"module": "analysis", "qualname": "analyze", "file": "analysis.py"},
     "arguments": {"dt": 0.5, "data": {"$file": "data/raw.csv"}},
     "code": "<BLAKE3 of the code component when saved>",
     "signature": "<the signature when saved>"}

Arguments are the validated values in pydantic's JSON form, except: a File is
`{"$file": path}`, a numpy array `{"$npy": base64 of its .npy bytes}`, a task
`{"$task": <task document>}`; object keys starting with `$` get one more `$`.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gitcache.python.errors import ArgumentError
from gitcache.python.files import File
from gitcache.python.session import session_for
from gitcache.python.signing import hash_json

if TYPE_CHECKING:
    from gitcache.python.step import StepFunction

TASK_FORMAT: Final = 1


class Task:
    """One call of a step, validated but not made."""

    def __init__(self, step: StepFunction[Any, Any], arguments: dict[str, Any]) -> None:
        self.step = step
        self.arguments = arguments
        self._signature: str | None = None

    def __repr__(self) -> str:
        return f"<gitcache task {self.step.name} {self.signature[:12]}>"

    @property
    def signature(self) -> str:
        """The signature this call has now (files hashed, upstream tasks by theirs)."""
        session = session_for(Path.cwd())
        with session.lock:
            call = self.step.sign_bound(session, self.arguments)
        return call.signature

    def __gitcache_signature__(self) -> str:
        return self.signature

    def run(self) -> Any:
        """The result: from the memo, from the record, or computed and recorded."""
        step = self.step
        session = session_for(Path.cwd())
        with session.lock:
            call = step.sign_bound(session, self.arguments)
        if call.signature in step._memo:
            return step._memo[call.signature]
        value = step._resolve(session, call)
        step.remember(call.signature, value)
        return value

    def is_recorded(self) -> bool:
        session = session_for(Path.cwd())
        with session.lock:
            call = self.step.sign_bound(session, self.arguments)
            return session.store.lookup(call.signature, step=self.step.name) is not None

    def document(self) -> dict[str, Any]:
        """The task file's JSON value."""
        session = session_for(Path.cwd())
        step = self.step
        with session.lock:
            call = step.sign_bound(session, self.arguments)
        func = step.__gitcache_function__
        key = call.code.document.main if call.code.document is not None else ""
        where = key.rsplit(":", 1)[0] if key else ""
        if func.__module__ == "__main__" and (not where or where.startswith("<")):
            raise ArgumentError(
                f"step {step.name} is defined in a notebook cell or an interactive session: "
                "a task file could not import it",
                hint="define the step in a .py file of the repository and import it",
            )
        return {
            "gitcache_task": TASK_FORMAT,
            "step": step.name,
            "function": {
                "module": func.__module__,
                "qualname": func.__qualname__,
                "file": None if not where or where.startswith("<") else where,
            },
            "arguments": dump_arguments(step, self.arguments, inline_arrays=True),
            "code": code_digest(call),
            "signature": call.signature,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the task file `DIR/<step>-<signature 12>.json`; its path."""
        document = self.document()
        target = Path(directory) / f"{self.step.name}-{document['signature'][:12]}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, target)
        return target


def code_digest(call: Any) -> str:
    return hash_json([call.code.digest, call.code.references])


def _blob_reader(session: Any) -> Any:
    from gitcache.python.step import _blob_reader as reader

    return reader(session)


# -- arguments as JSON ------------------------------------------------------------------------


def dump_arguments(
    step: StepFunction[Any, Any], arguments: dict[str, Any], inline_arrays: bool
) -> dict[str, Any]:
    """Arguments in their task-file form; without `inline_arrays`, an array is only its
    fingerprint (record.json stays small; such a record cannot recreate its task)."""
    validators = step.signer.validators()
    return {
        name: _dump(value, validators[name], inline_arrays) for name, value in arguments.items()
    }


def _dump(value: Any, validator: Any, inline_arrays: bool) -> Any:
    if isinstance(value, Task):
        if inline_arrays:  # a task file: the upstream task in full
            return {"$task": value.document()}
        # record.json: which upstream call, by step and signature
        return {"$task": {"step": value.step.name, "signature": value.signature}}
    return _plain(value, validator, inline_arrays)


def _plain(value: Any, validator: Any, inline_arrays: bool) -> Any:
    if isinstance(value, File):
        return {"$file": _relative(value.path)}
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray) and not value.dtype.hasobject:
        if inline_arrays:
            buffer = io.BytesIO()
            numpy.save(buffer, value, allow_pickle=False)
            return {"$npy": base64.b64encode(buffer.getvalue()).decode()}
        from gitcache.python.codecs import array_fingerprint

        return {"$ndarray": array_fingerprint(value, "argument", False)}
    if isinstance(value, dict):
        return {
            ("$" + str(k) if str(k).startswith("$") else str(k)): _plain(v, None, inline_arrays)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return [_plain(v, None, inline_arrays) for v in value]
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        return {"$unavailable": type(value).__qualname__}


def _relative(path: Path) -> str:
    full = Path(os.path.abspath(path))
    try:
        session = session_for(Path.cwd())
        return full.relative_to(session.root).as_posix()
    except ValueError:
        return str(full)


def load_arguments(data: dict[str, Any], where: str, from_record: bool = False) -> dict[str, Any]:
    """Task-file arguments back as values (the step validates them when called); from a
    record, an upstream task's step is imported only from the repository (import_step)."""
    return {
        name: _load(value, f"{where}: argument {name}", from_record) for name, value in data.items()
    }


def _load(value: Any, where: str, from_record: bool) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$task":
                return load_task(inner, where, from_record)
            if key == "$file":
                session = session_for(Path.cwd())
                return File(session.root / inner if not os.path.isabs(inner) else inner)
            if key == "$npy":
                import numpy

                return numpy.load(io.BytesIO(base64.b64decode(inner)), allow_pickle=False)
            if key in ("$ndarray", "$unavailable"):
                raise ArgumentError(
                    f"{where}: the record keeps only a fingerprint of this value",
                    hint="save the task with task.save(DIR) to keep its arguments",
                )
        return {
            (k[1:] if k.startswith("$") else k): _load(v, where, from_record)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_load(v, where, from_record) for v in value]
    return value


# -- task files ----------------------------------------------------------------------------------


def read_task_file(path: Path) -> tuple[Task, dict[str, Any]]:
    """The task a file describes, and the file's document."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"{path}: not a readable task file: {exc}") from None
    if not isinstance(document, dict) or document.get("gitcache_task") != TASK_FORMAT:
        raise ArgumentError(f'{path}: not a gitcache task file (no "gitcache_task": 1)')
    return load_task(document, str(path)), document


def _repository_module(module: str, root: Path) -> bool:
    """Whether a module is loaded already, or its top-level package or module is a file
    of the repository (found without running anything)."""
    if module in sys.modules:
        return True
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    real_root = os.path.realpath(root)
    for place in places:
        if not place or place in ("built-in", "frozen"):
            return False
        real = os.path.realpath(place)
        if os.path.commonpath([real, real_root]) != real_root or any(
            part in ("site-packages", "dist-packages") for part in Path(real).parts
        ):
            return False
    return bool(places)


def _repository_file(root: Path, file: str, where: str) -> Path:
    """A step's source file named by a task file or record: a .py file of the repository."""
    from gitcache.record import check_relative_path

    try:
        relative = check_relative_path(file)
    except ValueError:
        raise ArgumentError(
            f"{where}: step file {file!r} is not a path inside the repository"
        ) from None
    path = root / relative
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if (
        not relative.endswith(".py")
        or os.path.commonpath([real, real_root]) != real_root
        or not os.path.isfile(real)
    ):
        raise ArgumentError(f"{where}: step file {file!r} is not a .py file of the repository")
    return path


def load_task(document: Any, where: str, from_record: bool = False) -> Task:
    try:
        function = document["function"]
        module, qualname = str(function["module"]), str(function["qualname"])
        file = function.get("file")
        arguments = document["arguments"]
    except (KeyError, TypeError) as exc:
        raise ArgumentError(
            f"{where}: no task to recreate (lacks {exc}): a record names an upstream task "
            "only by step and signature"
            if isinstance(document, dict) and "signature" in document and "function" not in document
            else f"{where}: task file lacks {exc}"
        ) from None
    step = import_step(module, qualname, file, where, from_record)
    values = load_arguments(arguments, where, from_record)
    return Task(step, step.signer.bind((), values))


def import_step(
    module: str, qualname: str, file: str | None, where: str, from_record: bool = False
) -> Any:
    """The step a task names: imported by module name, or from its file for a script.

    Importing runs a module's code. A file is imported only from inside the repository
    (never an absolute path or one with `..`); a record (perhaps fetched: its `python`
    section is not part of its signature) names a module that is imported only when it
    is loaded already or its file lies in the repository.
    """
    from gitcache.python.step import StepFunction

    loaded: Any = None
    session = session_for(Path.cwd())
    if module != "__main__" and (not from_record or _repository_module(module, session.root)):
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            loaded = None
    if loaded is None and file is not None:
        path = _repository_file(session.root, file, where)
        name = "gitcache_task_" + Path(file).stem
        loaded = sys.modules.get(name)
        if loaded is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ArgumentError(f"{where}: cannot import {path}")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded
            root = str(session.root)
            if root not in sys.path:
                sys.path.insert(0, root)
            spec.loader.exec_module(loaded)
    if loaded is None:
        raise ArgumentError(f"{where}: cannot import module {module!r} of step {qualname}")
    found: Any = loaded
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, StepFunction):
        raise ArgumentError(f"{where}: {module}.{qualname} is not a gitcache step")
    return found

"""`gitcache.toml`: its dataclasses, loading, and the checks made before anything runs.

Every error names the file and the key path at fault (SPEC §2).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gitcache import interpolate
from gitcache.errors import ConfigError, command_line_text
from gitcache.graph import StepGraph, is_glob
from gitcache.params import DateTime, check_params, problem, toml_type
from gitcache.record import check_relative_path
from gitcache.stepnames import ref_component_problem
from gitcache.sweeps import ITEM, Sweep, check_sweep, check_templates

if TYPE_CHECKING:
    from gitcache.sweeps import Units
    from gitcache.worktree import Worktree

WORKFLOW_FILE = "gitcache.toml"
# The schema's env pattern, `^[A-Za-z_][A-Za-z0-9_]*$` in pydantic's Rust regex
# engine, where `$` is only the end of the text (Python's also matches before a
# final newline): hence fullmatch.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHELLS = frozenset(("sh", "bash"))
_REWRITES = frozenset(("protect", "block", "allow"))


# The parsed file as plain dataclasses: the fast check below makes them without
# pydantic, whose import and model building are much of every command's start-up;
# what it does not take as it is goes through the reference, the pydantic schema
# (workflowschema.py).


@dataclass(frozen=True)
class StepSpec:
    run: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    shell: Literal["sh", "bash"] = "sh"
    # A sweep (docs/sweeps.md): axis -> values, or paths / directories / globs.
    matrix: dict[str, Any] | None = None
    foreach: str | list[str] | None = None


@dataclass(frozen=True)
class HooksSpec:
    rewrite: Literal["protect", "block", "allow"] = "protect"
    # Whether the file sets `rewrite` (hookpolicy installs hooks only then); not part
    # of the value, as pydantic's fields set were not.
    rewrite_given: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class RestoreSpec:
    """Caps on what restoring one record may write (a fetched record is untrusted)."""

    max_files: int = 100_000
    max_bytes: int = 10 * 2**30


@dataclass(frozen=True)
class WorkflowFile:
    params: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepSpec] = field(default_factory=dict)
    require_clean: bool = False
    dirty_ok: list[str] = field(default_factory=list)
    remote: str | None = None
    push_on_record: bool = False
    hooks: HooksSpec = HooksSpec()
    restore: RestoreSpec = RestoreSpec()


@dataclass(frozen=True)
class Step:
    """A validated step: paths are posix, relative to the repository root.

    A sweep step (`sweep` set) holds its path templates; each of its items is a Step
    with the paths filled in, its values in `item` and its label (`train[lr=0.1]`).
    """

    name: str
    spec: StepSpec
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params_used: tuple[str, ...]  # params and axes whose values enter the signature
    sweep: Sweep | None = None
    item: dict[str, Any] | None = None  # an item's axis -> value, or {"item": path}
    label: str = ""
    # Files read beyond the declared inputs: a foreach item's own file when no declared
    # input covers it (the command reads `{item}`, so its content must count). In the
    # signature's inputs, never in `{inputs}`.
    implied: tuple[str, ...] = ()

    @property
    def signed_inputs(self) -> tuple[str, ...]:
        """The inputs whose blob ids enter the signature: declared, then implied."""
        return self.inputs + self.implied if self.implied else self.inputs

    @property
    def run(self) -> str:
        return self.spec.run

    @property
    def key(self) -> str:
        """What names this unit in a run: the item's label, or the step's name."""
        return self.label or self.name


@dataclass(frozen=True)
class Workflow:
    path: Path
    root: Path
    config: WorkflowFile
    params: dict[str, Any]
    steps: dict[str, Step]
    graph: StepGraph

    def with_params(self, overrides: dict[str, Any]) -> Workflow:
        return Workflow(
            self.path, self.root, self.config, {**self.params, **overrides}, self.steps, self.graph
        )

    def select(self, names: list[str]) -> list[str]:
        """Names plus everything they need, in run order; all steps if names is empty.

        Step names only, and with sweeps the order leaves out dependencies through
        sweep steps: `units(...).select` is the run order of steps and items.
        """
        for name in names:
            if name not in self.steps:
                known = ", ".join(sorted(self.steps)) or "none"
                raise ConfigError(f"{self.path.name}: unknown step {name!r} (steps: {known})")
        return self.graph.order(names or list(self.steps))

    def units(self, worktree: Worktree, params: dict[str, Any] | None = None) -> Units:
        """Every plain step and sweep item, with `-p` values (`params`) applied to axes."""
        from gitcache.sweeps import expand

        return expand(self, worktree, params if params is not None else self.params)

    def axis_values(self, name: str) -> tuple[Any, ...] | None:
        """The values of a matrix axis (the first step that declares it), else None."""
        for step in self.steps.values():
            if step.sweep is not None and name in step.sweep.axes:
                return step.sweep.axes[name]
        return None


def load_workflow(path: Path, root: Path) -> Workflow:
    """Read, validate and check a workflow file; raise ConfigError naming what is wrong."""
    label = _label(path, root)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(
            f"no {path.name} in {path.parent}", hint="run `gitcache init` to write a starter file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib descends one Python call per level
        raise ConfigError(f"{label}: invalid TOML: values nested too deeply to read") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read: {exc}") from None
    config = plain_config(raw)
    if config is None:  # the schema decides: its conversions, its error messages
        from gitcache.workflowschema import validate

        config = validate(raw, label)
    check_params(config.params, label)
    seen: dict[str, str] = {}
    for name in config.steps:
        other = seen.setdefault(name.casefold(), name)
        if other != name:  # refs/gitcache/step/<name>: one file on macOS and Windows
            raise ConfigError(
                f"{label}: steps {other!r} and {name!r} differ only in case: their git refs "
                "would be one file on a case-insensitive file system (macOS, Windows)"
            )
    steps = {
        name: _check_step(label, root, name, spec, config) for name, spec in config.steps.items()
    }
    # Sweep steps are ordered item by item once expanded (sweeps.expand); here only the
    # plain steps' graph is checked.
    graph = StepGraph.build(
        label,
        {n: ((), ()) if s.sweep else (s.inputs, s.outputs) for n, s in steps.items()},
    )
    return Workflow(path, root, config, dict(config.params), steps, graph)


class _Unusual(Exception):
    """Raised inside the fast check: a value it does not take as it is."""


def plain_config(raw: Any) -> WorkflowFile | None:
    """`raw` (tomllib's dict) as a WorkflowFile when every value has the plain shape a
    gitcache.toml usually has; None for anything else, which the schema decides.

    Exact types only (`type(x) is ...`): what pydantic would convert (1 for a float,
    "true" for a bool, 1.0 for an int) or refuse is never taken here, so a file
    taken gives the values the schema would give, and any other file the schema's
    own conversions and messages.
    """
    try:
        return _file(raw)
    except _Unusual:
        return None


# The keys a table may have: the dataclasses' fields (a hooks table sets `rewrite`
# only), and the defaults of what a file leaves out.
_FILE_KEYS = frozenset(f.name for f in fields(WorkflowFile))
_STEP_KEYS = frozenset(f.name for f in fields(StepSpec))
_HOOKS_KEYS = frozenset({"rewrite"})
_RESTORE_KEYS = frozenset(f.name for f in fields(RestoreSpec))
_DEFAULT_HOOKS = HooksSpec()
_DEFAULT_RESTORE = RestoreSpec()
_DEFAULT_SHELL = StepSpec.__dataclass_fields__["shell"].default


def _file(raw: Any) -> WorkflowFile:
    if type(raw) is not dict or not raw.keys() <= _FILE_KEYS:
        raise _Unusual
    steps = {_name(name): _step(spec) for name, spec in _dict(raw.get("steps", {})).items()}
    hooks = _dict(raw.get("hooks", {}))
    if not hooks.keys() <= _HOOKS_KEYS:
        raise _Unusual
    rewrite = hooks.get("rewrite", _DEFAULT_HOOKS.rewrite)
    if type(rewrite) is not str or rewrite not in _REWRITES:
        raise _Unusual
    restore = _dict(raw.get("restore", {}))
    if not restore.keys() <= _RESTORE_KEYS:
        raise _Unusual
    remote = raw.get("remote")
    if remote is not None and type(remote) is not str:
        raise _Unusual
    return WorkflowFile(
        params=_dict(raw.get("params", {})),
        steps=steps,
        require_clean=_bool(raw.get("require_clean", False)),
        dirty_ok=_strs(raw.get("dirty_ok", [])),
        remote=remote,
        push_on_record=_bool(raw.get("push_on_record", False)),
        hooks=HooksSpec(rewrite, rewrite_given="rewrite" in hooks),  # type: ignore[arg-type]
        restore=RestoreSpec(
            _count(restore.get("max_files", _DEFAULT_RESTORE.max_files)),
            _count(restore.get("max_bytes", _DEFAULT_RESTORE.max_bytes)),
        ),
    )


def _step(raw: Any) -> StepSpec:
    if type(raw) is not dict or not raw.keys() <= _STEP_KEYS:
        raise _Unusual
    run = raw.get("run")
    shell = raw.get("shell", _DEFAULT_SHELL)
    if type(run) is not str or type(shell) is not str or shell not in _SHELLS:
        raise _Unusual
    env = _strs(raw.get("env", []))
    if not all(_ENV_NAME.fullmatch(name) for name in env):
        raise _Unusual
    matrix = raw.get("matrix")
    foreach = raw.get("foreach")
    return StepSpec(
        run=run,
        inputs=_strs(raw.get("inputs", [])),
        outputs=_strs(raw.get("outputs", [])),
        env=env,
        shell=shell,  # type: ignore[arg-type]
        matrix=None if matrix is None else _dict(matrix),
        foreach=foreach if foreach is None or type(foreach) is str else _strs(foreach),
    )


def _name(name: str) -> str:
    if ref_component_problem(name) is not None:  # the schema's message names the rule
        raise _Unusual
    return name


def _dict(value: Any) -> dict[str, Any]:
    """A copy of a table with string keys (its values as they are, like `Any`)."""
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise _Unusual
    return dict(value)


def _strs(value: Any) -> list[str]:
    if type(value) is not list or not all(type(v) is str for v in value):
        raise _Unusual
    return list(value)


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _Unusual
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise _Unusual
    return value


def _label(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _check_step(label: str, root: Path, name: str, spec: StepSpec, config: WorkflowFile) -> Step:
    where = f"{label}: steps.{name}"
    sweep = check_sweep(where, spec, config.params)
    params = check_templates(f"{where}.inputs", spec.inputs, sweep, config.params)
    params += check_templates(f"{where}.outputs", spec.outputs, sweep, config.params)
    if sweep is None:
        inputs = tuple(_inside(root, p, f"{where}.inputs") for p in spec.inputs)
        outputs = tuple(_inside(root, p, f"{where}.outputs") for p in spec.outputs)
    else:  # templates: filled in and checked item by item (sweeps.make_item)
        inputs, outputs = tuple(spec.inputs), tuple(spec.outputs)
        for path in (*inputs, *outputs):
            if not path.strip():
                raise ConfigError(f"{where}: empty path")
    for out in outputs:
        # In a template only its own text counts: a value filled in (a file named
        # `x[1].png`, an axis value "a*b") is part of a literal path.
        if is_glob(out if sweep is None else interpolate.literal_text(out)):
            raise ConfigError(f"{where}.outputs: {out!r} is a glob; outputs must be paths")
    try:
        used = interpolate.fields(spec.run)
    except ValueError as exc:
        raise ConfigError(f"{where}.run: bad format string: {exc}") from None
    names = sweep.names if sweep is not None else ()
    for used_name in used:
        if used_name in interpolate.RESERVED or used_name in names:
            continue
        if used_name not in config.params:
            if used_name == ITEM:
                raise ConfigError(f"{where}.run: {{{ITEM}}} is only defined in a foreach step")
            known = ", ".join([*names, *sorted(config.params)]) or "none"
            raise ConfigError(
                f"{where}.run: {{{used_name}}} is not defined (params: {known}; "
                "also {inputs} and {outputs})",
                hint="use {{ and }} for literal braces",
            )
        params.append(used_name)
    if sweep is None:
        # With the defaults, and any {inputs[N]} taken to exist (their number is known
        # only once globs and directories are expanded: the run checks that before it
        # starts). A sweep's command is checked item by item, before anything runs.
        why = interpolate.problem(spec.run, config.params, None, outputs)
        if why is not None:
            raise ConfigError(f"{where}.run: {why}")
    return Step(name, spec, inputs, outputs, tuple(sorted({*params, *names})), sweep)


def inside(root: Path, path: str, where: str) -> str:
    """A declared path normalized to posix relative to root (ConfigError if outside)."""
    return _inside(root, path, where)


def _inside(root: Path, path: str, where: str) -> str:
    """Normalize a declared path to posix relative to root; refuse anything outside it."""
    if not path.strip():
        raise ConfigError(f"{where}: empty path")
    joined = os.path.normpath(os.path.join(root, path))
    rel = os.path.relpath(joined, root)
    parts = Path(rel).parts
    if rel == "." or parts[0] == ".." or os.path.isabs(rel):
        raise ConfigError(f"{where}: {path!r} is outside the repository")
    posix = Path(rel).as_posix()
    try:  # the rule record.json's paths follow: a step could not record this path
        check_relative_path(posix)
    except ValueError as exc:
        if "inside .git" in str(exc):  # at any depth, in any case (.GIT, .git.)
            raise ConfigError(f"{where}: {path!r} is inside .git") from None
        raise ConfigError(f"{where}: {exc}") from None
    return posix


def parse_overrides(workflow: Workflow, assignments: list[str]) -> dict[str, Any]:
    """`-p NAME=VALUE` values, converted to the type of the parameter's default."""
    result: dict[str, Any] = {}
    for item in assignments:
        name, text = split_assignment(item, "-p")
        if name not in workflow.params:
            axis = workflow.axis_values(name)
            if axis is not None:  # narrows or replaces the axis (docs/sweeps.md)
                result[name] = _axis_value(name, text, axis)
                continue
            known = ", ".join(sorted(workflow.params)) or "none"
            raise ConfigError(
                f"-p {name}: no such parameter in {workflow.path.name} (params: {known})"
            )
        result[name] = convert_value(name, text, workflow.params[name])
    return result


def _axis_value(name: str, text: str, values: tuple[Any, ...]) -> Any:
    """`-p AXIS=VALUE`: typed like the axis's values when they share one type (int and
    float count as float), else read as a TOML value, or a string."""
    kinds = {toml_type(v) for v in values}
    if kinds == {"integer", "float"}:
        kinds = {"float"}
        values = (float(values[0]),)
    if len(kinds) == 1:
        return convert_value(name, text, values[0])
    from gitcache.sweeps import parse_value

    value = parse_value(text)
    value = text if value is None else value
    found = problem(value)
    if found is not None or isinstance(value, list | dict):
        why = found[1] if found is not None else "an axis value is a scalar"
        raise ConfigError(f"-p {name}={text}: {why}")
    return value


def split_assignment(item: str, flag: str) -> tuple[str, str]:
    """NAME and VALUE of a `NAME=VALUE` given with `flag` (ConfigError if malformed)."""
    name, sep, text = command_line_text(item, flag).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"{flag} {item!r}: expected NAME=VALUE")
    return name, text


def convert_value(name: str, text: str, default: Any, flag: str = "-p") -> Any:
    """A command-line value (given with `flag`) converted to the type of the parameter's default."""
    if isinstance(default, str):
        return text
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # not TOML, or nested too deeply
        value = text
    expected = type(default)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, DateTime) or isinstance(value, DateTime):
        # The four TOML date/time types are distinct (a datetime is also a date in Python).
        if toml_type(value) != toml_type(default):
            raise ConfigError(
                f"{flag} {name}={text}: expected {toml_type(default)} like the default "
                f"{default.isoformat() if isinstance(default, DateTime) else repr(default)}"
            )
    elif not isinstance(value, expected) or (isinstance(value, bool) != isinstance(default, bool)):
        raise ConfigError(
            f"{flag} {name}={text}: expected {expected.__name__} like the default {default!r}"
        )
    found = problem(value)
    if found is not None:
        raise ConfigError(f"{flag} {name}={text}: {name}{found[0]}: {found[1]}")
    return value

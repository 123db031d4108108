"""Sweeps: `matrix` and `foreach` steps, their items, labels and selection (docs/sweeps.md).

A sweep step stands for several *items*, each a step of its own for signatures,
records, status and log: a `matrix` makes one item per combination of its axes'
values (cartesian product, axes in declaration order, values in list order); a
`foreach` makes one item per file its paths, directories or globs match (sorted).
An item's `inputs` and `outputs` are the step's templates filled in with its values.

`expand` turns a workflow into `Units`: every plain step, and every item of every
sweep, with the dependencies between them. A `foreach` over files that another step
produces is *dynamic*: it stays one unit until the scheduler reaches it (after its
producers ran), and `Units.fan_out` then makes its items.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import blake3

from gitcache import interpolate
from gitcache.canonical import canonical_json
from gitcache.errors import ConfigError
from gitcache.graph import (
    StepGraph,
    input_covers,
    input_matches_output,
    is_glob,
)
from gitcache.params import decoded_text, encode, problem, toml_type
from gitcache.record import check_relative_path

if TYPE_CHECKING:
    from gitcache.statcache import FileState
    from gitcache.workflow import Step, StepSpec, Workflow
    from gitcache.worktree import Worktree

AXIS_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ITEM: Final = "item"  # the field (and params key) of a foreach item's path
_SCALARS: Final = (str, int, float, bool, date, time)


@dataclass(frozen=True)
class Sweep:
    """What makes a step a sweep: its matrix axes, or its foreach paths."""

    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    foreach: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The fields an item gives its templates (`lr`, `seed`; or `item`)."""
        return (ITEM,) if self.foreach else tuple(self.axes)


# -- checking a sweep step ------------------------------------------------------------


def check_sweep(where: str, spec: StepSpec, params: Mapping[str, Any]) -> Sweep | None:
    """The sweep of a step (None: not a sweep); ConfigError naming the key at fault."""
    if spec.matrix is not None and spec.foreach is not None:
        raise ConfigError(f"{where}: a step has `matrix` or `foreach`, not both")
    if spec.matrix is not None:
        return Sweep(axes=_check_axes(f"{where}.matrix", spec.matrix, params))
    if spec.foreach is not None:
        patterns = [spec.foreach] if isinstance(spec.foreach, str) else list(spec.foreach)
        if not patterns:
            raise ConfigError(f"{where}.foreach: an empty list matches no file")
        for pattern in patterns:
            if not pattern.strip():
                raise ConfigError(f"{where}.foreach: empty path")
        if ITEM in params:
            raise ConfigError(
                f"{where}.foreach: params.{ITEM} would make {{{ITEM}}} ambiguous; "
                "rename the parameter"
            )
        return Sweep(foreach=tuple(patterns))
    return None


def _check_axes(
    where: str, matrix: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, tuple[Any, ...]]:
    if not matrix:
        raise ConfigError(f"{where}: a matrix needs at least one axis")
    axes: dict[str, tuple[Any, ...]] = {}
    for name, values in matrix.items():
        at = f"{where}.{name}"
        if not AXIS_NAME.match(name) or name in interpolate.RESERVED or name == ITEM:
            raise ConfigError(
                f"{at}: invalid axis name {name!r} (letters, digits and '_', not starting "
                "with a digit; not inputs, outputs or item)"
            )
        if name in params:
            raise ConfigError(
                f"{at}: params.{name} has the same name, so {{{name}}} would be ambiguous; "
                "rename one"
            )
        if not isinstance(values, list):
            raise ConfigError(f"{at}: an axis is a list of values (got {_shown(values)})")
        if not values:
            raise ConfigError(f"{at}: an empty axis makes no items")
        seen: dict[tuple[str, Any], int] = {}
        for i, value in enumerate(values):
            if not isinstance(value, _SCALARS):
                raise ConfigError(
                    f"{at}[{i}]: an axis value is a string, number, boolean, date or time "
                    f"(got {toml_type(value)} {_shown(value)})"
                )
            found = problem(value)
            if found is not None:
                raise ConfigError(f"{at}[{i}]: {found[1]}")
            key = same_key(value)
            if key in seen:
                raise ConfigError(
                    f"{at}: duplicate value {value_text(value)} (items {seen[key]} and {i})"
                )
            seen[key] = i
        axes[name] = tuple(values)
    return axes


def _shown(value: Any) -> str:
    return value.isoformat() if isinstance(value, date | time) else repr(value)


def same_key(value: Any) -> tuple[str, Any]:
    """Values that name the same item (1 and 1.0 do; 1 and true, or 1 and "1", do not)."""
    kind = toml_type(value)
    return ("number" if kind in ("integer", "float") else kind, value)


def check_templates(
    where: str, paths: Sequence[str], sweep: Sweep | None, params: Mapping[str, Any]
) -> list[str]:
    """The parameters a step's path templates use; ConfigError for an unknown field.

    In a plain step paths are literal; only `{item...}` is refused there (it is a
    foreach step's field, most likely forgotten `foreach`).
    """
    used: list[str] = []
    for path in paths:
        try:
            fields = interpolate.fields(path)
        except ValueError as exc:
            if sweep is None:
                continue  # a literal path with braces
            raise ConfigError(f"{where}: {path!r}: bad format string: {exc}") from None
        for root in fields:
            if sweep is None:
                if root == ITEM:
                    raise ConfigError(f"{where}: {{{ITEM}}} is only defined in a foreach step")
                continue
            if root in sweep.names:
                continue
            if root in params:
                used.append(root)
                continue
            if root == ITEM:
                raise ConfigError(f"{where}: {{{ITEM}}} is only defined in a foreach step")
            known = ", ".join([*sweep.names, *sorted(params)]) or "none"
            raise ConfigError(f"{where}: {path!r}: {{{root}}} is not defined (known: {known})")
    return used


# -- items ----------------------------------------------------------------------------


def value_text(value: Any) -> str:
    """A value as labels show it: canonical JSON (`0.1`, `"adam"`), ISO text for dates."""
    encoded = encode(value)
    return decoded_text(encoded) or canonical_json(encoded).decode()


def label(name: str, values: Mapping[str, Any] | None) -> str:
    """`train[lr=0.1,seed=1]`, `thumbs[images/a.png]`; the name alone for a plain step."""
    if values is None:
        return name
    if list(values) == [ITEM]:
        return f"{name}[{values[ITEM]}]"
    return f"{name}[{','.join(f'{k}={value_text(v)}' for k, v in values.items())}]"


def encoded_label(name: str, item: Mapping[str, Any]) -> str:
    """The label of an item from a record's `item` (values as canonical JSON holds them)."""
    if list(item) == [ITEM] and isinstance(item[ITEM], str):
        return f"{name}[{item[ITEM]}]"
    texts = (decoded_text(v) or canonical_json(v).decode() for v in item.values())
    return f"{name}[{','.join(f'{k}={t}' for k, t in zip(item, texts, strict=True))}]"


def item_id(values: Mapping[str, Any]) -> str:
    """16 hex digits naming an item in ref names: BLAKE3 of its values' canonical JSON."""
    return blake3.blake3(canonical_json(encode(dict(values)))).hexdigest()[:16]


def format_values(step: Step, params: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """What a step's templates see: the params (and an item's axis values), and the
    foreach path (given to `interpolate` on its own, for `{item.stem}` and quoting)."""
    if step.item is None:
        return params, None
    path = step.item.get(ITEM) if step.sweep is not None and step.sweep.foreach else None
    return {**params, **step.item}, path


def _fill(
    where: str, template: str, values: Mapping[str, Any], path: str | None, root: Path
) -> str:
    try:
        filled = interpolate.render_path(template, values, path)
    except interpolate.FIELD_ERRORS as exc:
        raise ConfigError(f"{where}: {template!r}: {exc}") from None
    try:  # the usual case: already a plain relative path
        return check_relative_path(filled)
    except ValueError:
        from gitcache.workflow import inside  # a cycle at import time only

        return inside(root, filled, where)


def make_item(
    step: Step, values: dict[str, Any], params: Mapping[str, Any], root: Path, where: str
) -> Step:
    """The item of a sweep step with these values: its paths filled in and checked."""
    merged = {**params, **values}
    path = values.get(ITEM) if step.sweep is not None and step.sweep.foreach else None
    inputs = tuple(_fill(f"{where}.inputs", t, merged, path, root) for t in step.inputs)
    outputs = tuple(_fill(f"{where}.outputs", t, merged, path, root) for t in step.outputs)
    for out in outputs:
        # A filled-in output is a literal path: brackets from a value (`photo[1].png`)
        # name a file. `*` or `?` would make a path that every glob over the
        # directory, the user's `rm out/*` included, takes for a pattern: refused.
        if "*" in out or "?" in out:
            raise ConfigError(
                f"{where}.outputs: item {label(step.name, values)} gives {out!r}, a glob"
            )
    # A foreach item's file is what its command works on: its content counts even where
    # `inputs` does not name it (else editing the file would leave a stale record).
    implied = (path,) if path and not any(input_covers(i, path) for i in inputs) else ()
    return replace(
        step,
        inputs=inputs,
        outputs=outputs,
        item=values,
        label=label(step.name, values),
        implied=implied,
    )


# -- expansion ------------------------------------------------------------------------


@dataclass
class Units:
    """What the engine schedules: plain steps and sweep items, keyed by label.

    A dynamic foreach step is one unit (keyed by its name) until `fan_out`.
    """

    file: str  # the workflow file's name, for messages
    root: Path
    params: Mapping[str, Any]
    steps: dict[str, Step]
    needs: dict[str, tuple[str, ...]]
    of_step: dict[str, list[str]]  # step name -> its unit keys, in item order
    # Dynamic foreach steps not fanned out yet -> the fixed directories they write under.
    dynamic: dict[str, list[str]] = field(default_factory=dict)
    group: dict[str, str] = field(default_factory=dict)  # item of a dynamic step -> step
    # Dynamic step -> its selectors (text, parsed): filters for its items once known.
    wanted: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)

    @property
    def graph(self) -> StepGraph:
        return StepGraph(self.needs)

    def outputs_of(self, key: str) -> list[str]:
        """Declared outputs of a unit; of a fanned-out step, all its items' outputs."""
        if key in self.dynamic:
            return list(self.dynamic[key])
        step = self.steps[key]
        if step.item is None and step.sweep is not None:
            keys = self.of_step.get(step.name, [])
            return [o for k in keys if k != key for o in self.steps[k].outputs]
        return list(step.outputs)

    # -- selection --------------------------------------------------------------------

    def resolve(self, targets: Sequence[str]) -> list[str]:
        """Unit keys named by step names and item selectors (`train[lr=0.1]`)."""
        keys: list[str] = []
        for target in targets:
            name, selector = split_target(target)
            if name not in self.of_step:
                known = ", ".join(sorted(self.of_step)) or "none"
                raise ConfigError(f"{self.file}: unknown step {name!r} (steps: {known})")
            if selector is None:
                keys.extend(self.of_step[name])
                continue
            step = self.steps[self.of_step[name][0]]
            if step.sweep is None:
                raise ConfigError(f"{target!r}: step {name!r} is not a sweep; it has no items")
            wanted = parse_selector(step, selector)
            if name in self.dynamic:  # its items are known once it is reached
                self.wanted.setdefault(name, []).append((selector, wanted))
                keys.append(name)
                continue
            found = [k for k in self.of_step[name] if matches(self.steps[k], wanted)]
            if not found:
                raise ConfigError(
                    f"step {name!r} has no item {selector} ({_items_hint(self, name)})"
                )
            keys.extend(found)
        return list(dict.fromkeys(keys))

    def select(self, targets: Sequence[str]) -> list[str]:
        """Targets (all units if none) and what they need, in run order."""
        keys = self.resolve(targets) if targets else list(self.steps)
        return self.graph.order(keys)

    # -- dynamic fan-out ----------------------------------------------------------------

    def fan_out(self, name: str, files: Iterable[str]) -> list[str]:
        """Make the items of a dynamic foreach step from the files its paths now match."""
        step = self.steps[name]
        where = f"{self.file}: steps.{name}"
        items = [make_item(step, {ITEM: f}, self.params, self.root, where) for f in files]
        filters = self.wanted.get(name, [])
        for selector, wanted in filters:  # each must name an item, as in `resolve`
            if not any(matches(i, wanted) for i in items):
                count = f"{len(items)} item{'s' if len(items) != 1 else ''}"
                raise ConfigError(f"step {name!r} has no item {selector} (it has {count})")
        if filters:
            items = [i for i in items if any(matches(i, w) for _, w in filters)]
        _check_outputs(where, items, _patterns_or_none(step, self.params, self.root, self.file))
        keys = [i.key for i in items]
        for item in items:
            self.steps[item.key] = item
            self.needs[item.key] = self.needs[name]
            self.group[item.key] = name
        self.of_step[name] = [name, *keys]
        del self.dynamic[name]
        return keys

    def foreach_files(
        self, name: str, worktree: Worktree, overlay: Mapping[str, FileState]
    ) -> list[str] | str:
        """The files a dynamic foreach step's paths match now (on disk, or in the
        planner's overlay of what earlier steps will restore); a message if none."""
        return _foreach_files(self.steps[name], self.params, worktree, overlay, self.file)


def split_target(target: str) -> tuple[str, str | None]:
    """`train[lr=0.1]` -> ("train", "lr=0.1"); `train` -> ("train", None)."""
    if target.endswith("]") and "[" in target:
        name, _, rest = target.partition("[")
        return name, rest[:-1]
    return target, None


def parse_selector(step: Step, selector: str) -> dict[str, str]:
    """An item selector's axis -> value text (a foreach item: `item` -> a path or glob)."""
    assert step.sweep is not None
    if step.sweep.foreach:
        text = selector.removeprefix(f"{ITEM}=")
        return {ITEM: text}
    names = list(step.sweep.axes)
    split = re.compile(r",\s*(?=(?:" + "|".join(map(re.escape, names)) + r")\s*=)")
    wanted: dict[str, str] = {}
    for part in split.split(selector):
        axis, sep, text = part.partition("=")
        axis = axis.strip()
        if not sep or axis not in names:
            raise ConfigError(
                f"{step.name}[{selector}]: expected AXIS=VALUE for axes {', '.join(names)}"
            )
        if axis in wanted:  # `s[a=1,a=2]` would select by its last value alone
            raise ConfigError(
                f"{step.name}[{selector}]: axis {axis} given twice "
                f"(name items one selector each: '{step.name}[{axis}={wanted[axis]}]' "
                f"'{step.name}[{axis}={text.strip()}]')"
            )
        wanted[axis] = text.strip()
    return wanted


def matches(item: Step, wanted: Mapping[str, str]) -> bool:
    """Whether an item has every value of a selector (`0.1` and `1e-1` name one float)."""
    assert item.item is not None
    for axis, text in wanted.items():
        have = item.item.get(axis)
        if axis == ITEM and isinstance(have, str):
            from fnmatch import fnmatchcase

            if not (have == text or (is_glob(text) and fnmatchcase(have, text))):
                return False
        elif not value_matches(have, text):
            return False
    return True


def value_matches(have: Any, text: str) -> bool:
    """A value given on the command line names `have` (its label text, or the TOML
    value it reads as; a bare word is a string)."""
    if text == value_text(have) or (isinstance(have, str) and text == have):
        return True
    parsed = parse_value(text)
    return parsed is not None and same_key(parsed) == same_key(have)


def parse_value(text: str) -> Any:
    """A command-line value read as TOML (`0.1`, `true`, `"a"`, `2024-01-01`), else None."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # not TOML, or nested too deeply
        return None


def _items_hint(units: Units, name: str) -> str:
    step = units.steps[units.of_step[name][0]]
    assert step.sweep is not None
    if step.sweep.foreach:
        count = len(units.of_step[name])
        return f"it has {count} item{'s' if count != 1 else ''}"
    axes = [f"{a}: {', '.join(value_text(v) for v in vs)}" for a, vs in step.sweep.axes.items()]
    return "; ".join(axes)


def narrow(values: tuple[Any, ...], wanted: Any) -> tuple[Any, ...]:
    """`-p axis=VALUE`: the axis becomes that one value (the existing one if equal)."""
    for value in values:
        if same_key(value) == same_key(wanted):
            return (value,)
    return (wanted,)


def expand(workflow: Workflow, worktree: Worktree, params: Mapping[str, Any]) -> Units:
    """Every unit of the workflow, with `-p` values of axes (in `params`) applied."""
    file = workflow.path.name
    if not any(s.sweep is not None for s in workflow.steps.values()):
        return Units(
            file,
            workflow.root,
            params,
            dict(workflow.steps),
            dict(workflow.graph.needs),
            {name: [name] for name in workflow.steps},
        )
    steps: dict[str, Step] = {}
    of_step: dict[str, list[str]] = {}
    dynamic: dict[str, list[str]] = {}
    foreach_prefixes = {
        name: [p for t in s.outputs if (p := template_prefix(t))]
        for name, s in workflow.steps.items()
        if s.sweep is not None and s.sweep.foreach
    }
    for name, step in workflow.steps.items():
        where = f"{file}: steps.{name}"
        if step.sweep is None:
            steps[name] = step
            of_step[name] = [name]
        elif not step.sweep.foreach:
            axes = {
                a: narrow(vs, params[a]) if a in params else vs for a, vs in step.sweep.axes.items()
            }
            items = [
                make_item(step, dict(zip(axes, combo, strict=True)), params, workflow.root, where)
                for combo in itertools.product(*axes.values())
            ]
            _check_outputs(where, items)
            steps.update((i.key, i) for i in items)
            of_step[name] = [i.key for i in items]
        elif _reads_outputs(name, step, workflow, foreach_prefixes):
            dynamic[name] = foreach_prefixes[name]
            if len(foreach_prefixes[name]) != len(step.outputs):
                raise ConfigError(
                    f"{where}.outputs: a foreach over another step's outputs must write under "
                    "a fixed directory (like 'small/{item.stem}.png'), so steps that read "
                    "them can be ordered"
                )
            steps[name] = step
            of_step[name] = [name]
        else:
            found = _foreach_files(step, params, worktree, {}, file)
            if isinstance(found, str):
                raise ConfigError(found)
            items = [make_item(step, {ITEM: f}, params, workflow.root, where) for f in found]
            _check_outputs(where, items, _patterns_or_none(step, params, workflow.root, file))
            steps.update((i.key, i) for i in items)
            of_step[name] = [i.key for i in items]
    paths = {
        key: ((_graph_inputs(s), dynamic[key]) if key in dynamic else (s.inputs, s.outputs))
        for key, s in steps.items()
    }
    graph = StepGraph.build(file, paths)
    return Units(file, workflow.root, params, steps, dict(graph.needs), of_step, dynamic)


def template_prefix(template: str) -> str:
    """The directories of a path template before its first field (`small` for
    `small/{item.stem}.png`); empty when the first component has a field."""
    parts = []
    for part in template.split("/"):
        if "{" in part or "}" in part:
            break
        parts.append(part)
    if len(parts) == len(template.split("/")):
        return template
    return "/".join(parts)


def _graph_inputs(step: Step) -> list[str]:
    """What a dynamic foreach step reads, for ordering: its foreach paths, its literal
    inputs, and the fixed directories of its input templates."""
    assert step.sweep is not None
    found = list(step.sweep.foreach)
    found += [p for t in step.inputs if (p := template_prefix(t))]
    return found


def _reads_outputs(
    name: str, step: Step, workflow: Workflow, foreach_prefixes: Mapping[str, list[str]]
) -> bool:
    """Whether a foreach step's paths can match what another step writes (dynamic)."""
    assert step.sweep is not None
    for other_name, other in workflow.steps.items():
        if other_name == name:
            continue
        if other.sweep is not None and other.sweep.foreach:
            outputs: Sequence[str] = foreach_prefixes[other_name]
        elif other.sweep is not None:
            outputs = [p for t in other.outputs if (p := template_prefix(t))]
        else:
            outputs = other.outputs
        if any(input_matches_output(p, o) for p in step.sweep.foreach for o in outputs):
            return True
    return False


def _foreach_files(
    step: Step,
    params: Mapping[str, Any],
    worktree: Worktree,
    overlay: Mapping[str, FileState],
    file: str,
) -> list[str] | str:
    patterns = foreach_patterns(step, params, worktree.root, file)
    if isinstance(patterns, str):
        return patterns
    where = f"{file}: steps.{step.name}.foreach"
    expansion = worktree.expand(patterns)
    files = set(expansion.files)
    for path in overlay:
        if any(input_covers(p, path) for p in patterns):
            files.add(path)
    for pattern in expansion.missing:
        if not any(input_covers(pattern, p) for p in files):
            return f"{where}: {pattern!r} matches no file"
    return sorted(files)


def foreach_patterns(
    step: Step, params: Mapping[str, Any], root: Path, file: str
) -> list[str] | str:
    """A foreach step's paths with `[params]` filled in, checked; a message if one is bad."""
    assert step.sweep is not None
    where = f"{file}: steps.{step.name}.foreach"
    patterns = []
    for template in step.sweep.foreach:
        try:
            filled = interpolate.render_path(template, params)
        except interpolate.FIELD_ERRORS as exc:
            return f"{where}: {template!r}: {exc}"
        try:
            patterns.append(check_relative_path(filled))
        except ValueError:
            from gitcache.workflow import inside

            patterns.append(inside(root, filled, where))
    return patterns


def _patterns_or_none(step: Step, params: Mapping[str, Any], root: Path, file: str) -> list[str]:
    """The foreach paths, or none where they cannot be filled in (already reported)."""
    patterns = foreach_patterns(step, params, root, file)
    return [] if isinstance(patterns, str) else patterns


def _check_outputs(where: str, items: Sequence[Step], patterns: Sequence[str] = ()) -> None:
    """Two items of one step may not write one path, and a foreach item may not write
    what its own foreach paths match (each run would make an item of it, and of that
    item's output, without end)."""
    owner: dict[str, str] = {}
    for item in items:
        for out in item.outputs:
            other = owner.setdefault(out, item.key)
            if other != item.key:
                raise ConfigError(
                    f"{where}.outputs: items {other} and {item.key} both write {out!r} "
                    "(use every axis, or the item, in the output path)"
                )
            matched = next((p for p in patterns if input_matches_output(p, out)), None)
            if matched is not None:
                raise ConfigError(
                    f"{where}.outputs: item {item.key} writes {out!r}, which its own "
                    f"foreach {matched!r} matches (the next run would make an item of it): "
                    "write outputs where the foreach paths do not reach"
                )

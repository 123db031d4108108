"""`run` templates: which fields they use, and rendering them into a shell command.

Fields follow `str.format`: `{size}` is a parameter, `{inputs}` / `{outputs}` are
the shell-quoted, space-joined paths, `{inputs[0]}` one of them. In a `foreach`
step, `{item}` is the item's path and `{item.stem}`, `{item.name}`, `{item.suffix}`,
`{item.parent}` parts of it: shell-quoted in `run`, as they are in `inputs` and
`outputs` (docs/sweeps.md).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from datetime import date, time
from pathlib import PurePosixPath
from typing import Any, Final

RESERVED: Final = frozenset({"inputs", "outputs"})


def fields(template: str) -> list[str]:
    """Root names of the fields a template references, in order (raises ValueError)."""
    found: list[str] = []
    for _text, name, spec, _conv in string.Formatter().parse(template):
        if name is None:
            continue
        root = name.split(".", 1)[0].split("[", 1)[0]
        if not root or root.isdigit():
            raise ValueError("positional fields like {} or {0} are not allowed; name the field")
        found.append(root)
        if spec:
            found.extend(fields(spec))
    return found


class _PathList(list[str]):
    """Formats as shell-quoted, space-joined paths; items format as one quoted path."""

    def __format__(self, spec: str) -> str:
        return " ".join(shlex.quote(p) for p in self)

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return _QuotedPath(item) if isinstance(item, str) else _PathList(item)


class _QuotedPath(str):
    def __format__(self, spec: str) -> str:
        return shlex.quote(str(self))


class ItemPath:
    """A foreach item's path and its parts, each shell-quoted when `quote` is set."""

    def __init__(self, path: str, quote: bool) -> None:
        self._path = path
        self._quote = quote

    def _text(self, text: str) -> Any:
        return _QuotedPath(text) if self._quote else text

    def __format__(self, spec: str) -> str:
        return format(self._text(self._path), spec)

    @property
    def name(self) -> Any:
        return self._text(PurePosixPath(self._path).name)

    @property
    def stem(self) -> Any:
        return self._text(PurePosixPath(self._path).stem)

    @property
    def suffix(self) -> Any:
        return self._text(PurePosixPath(self._path).suffix)

    @property
    def parent(self) -> Any:
        return self._text(PurePosixPath(self._path).parent.as_posix())


class _DateTime:
    """A TOML date or time: its ISO text (`2024-01-01T12:00:00+02:00`); with a format
    spec, strftime's (`{when:%Y}`); its attributes as Python's (`{when.year}`)."""

    def __init__(self, value: date | time) -> None:
        self._value = value

    def __format__(self, spec: str) -> str:
        return format(self._value, spec) if spec else self._value.isoformat()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._value, name)


class _Array(list[Any]):
    """An array parameter: `{names}` is its items joined by spaces, `{names[0]}` one item."""

    def __format__(self, spec: str) -> str:
        text = " ".join(v.isoformat() if isinstance(v, date | time) else str(v) for v in self)
        return format(text, spec)

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return _Array(item) if isinstance(index, slice) else _param_text(item)


def _param_text(value: Any) -> Any:
    if isinstance(value, list):
        return _Array(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | time):
        return _DateTime(value)
    return value


class _AnyPaths(_PathList):
    """Inputs not known yet (before globbing, or made by a step that has not run): any
    index is some path, so only the other fields are checked."""

    def __getitem__(self, index: Any) -> Any:
        return _QuotedPath("path")


FIELD_ERRORS: Final = (KeyError, IndexError, ValueError, AttributeError, TypeError)


def _values(
    params: Mapping[str, Any],
    inputs: Sequence[str] | None,
    outputs: Sequence[str],
    item: str | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {k: _param_text(v) for k, v in params.items()}
    values["inputs"] = _AnyPaths() if inputs is None else _PathList(inputs)
    values["outputs"] = _PathList(outputs)
    if item is not None:
        values["item"] = ItemPath(item, quote=True)
    return values


def render(
    template: str,
    params: Mapping[str, Any],
    inputs: Sequence[str],
    outputs: Sequence[str],
    item: str | None = None,
) -> str:
    """The command to execute (raises one of FIELD_ERRORS on a bad field; `problem` says which)."""
    return template.format_map(_values(params, inputs, outputs, item))


def literal_text(template: str) -> str:
    """A template's own text, its fields left out (`{{` and `}}` as single braces)."""
    return "".join(text for text, _name, _spec, _conv in string.Formatter().parse(template))


def render_path(template: str, values: Mapping[str, Any], item: str | None = None) -> str:
    """A declared path of a sweep step with its fields filled in, unquoted (raises one
    of FIELD_ERRORS on a bad field)."""
    filled: dict[str, Any] = {k: _param_text(v) for k, v in values.items()}
    if item is not None:
        filled["item"] = ItemPath(item, quote=False)
    return template.format_map(filled)


def uses_input_index(template: str) -> bool:
    """Whether a field picks one input (`{inputs[0]}`): its check needs the expanded inputs."""
    return any(
        name is not None and name.startswith("inputs") and name != "inputs"
        for _text, name, _spec, _conv in string.Formatter().parse(template)
    )


def problem(
    template: str,
    params: Mapping[str, Any],
    inputs: Sequence[str] | None,
    outputs: Sequence[str],
    item: str | None = None,
) -> str | None:
    """The first field that cannot be filled in, and why (None: the template renders).

    `inputs=None` means not known yet: any `{inputs[N]}` is taken to exist.
    """
    values = _values(params, inputs, outputs, item)
    for _text, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        field = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        field += "}"
        try:
            field.format_map(values)
        except FIELD_ERRORS as exc:
            return f"{field}: {_why(exc, name, params, inputs, outputs)}"
    return None


def _why(
    exc: Exception,
    name: str,
    params: Mapping[str, Any],
    inputs: Sequence[str] | None,
    outputs: Sequence[str],
) -> str:
    root = name.split(".", 1)[0].split("[", 1)[0]
    if isinstance(exc, IndexError) and root in RESERVED:
        paths = outputs if root == "outputs" else inputs or []
        noun = root[:-1] if len(paths) == 1 else root
        return f"no such {root[:-1]}: the step has {len(paths)} {noun}"
    text = str(exc) if not isinstance(exc, KeyError) else f"no key {exc}"
    if root not in RESERVED and root in params:
        value = params[root]
        text += f" ({root} is {value.isoformat() if isinstance(value, date | time) else value!r})"
    return text

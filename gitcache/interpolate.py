"""`run` templates: which fields they use, and rendering them into a shell command.

Fields follow `str.format`: `{size}` is a parameter, `{inputs}` / `{outputs}` are
the shell-quoted, space-joined paths, `{inputs[0]}` one of them.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from datetime import date, time
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


class _DateTime:
    """A TOML date or time: its ISO text (`2024-01-01T12:00:00+02:00`); with a format
    spec, strftime's (`{when:%Y}`); its attributes as Python's (`{when.year}`)."""

    def __init__(self, value: date | time) -> None:
        self._value = value

    def __format__(self, spec: str) -> str:
        return format(self._value, spec) if spec else self._value.isoformat()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._value, name)


def _param_text(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(v.isoformat() if isinstance(v, date | time) else str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | time):
        return _DateTime(value)
    return value


def render(
    template: str, params: Mapping[str, Any], inputs: Sequence[str], outputs: Sequence[str]
) -> str:
    """The command to execute (raises KeyError/IndexError/ValueError on a bad field)."""
    values: dict[str, Any] = {k: _param_text(v) for k, v in params.items()}
    values["inputs"] = _PathList(inputs)
    values["outputs"] = _PathList(outputs)
    return template.format_map(values)

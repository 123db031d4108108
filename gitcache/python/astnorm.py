"""A canonical form of Python syntax trees, equal across Python 3.11, 3.12 and 3.13.

`ast.dump` is not used: its text changes between versions (3.12 adds `type_params`
and an empty constant at the end of f-string format specs, 3.13 leaves default
fields out). Instead every node becomes a plain JSON value:

    ["NodeType", {"field": value, ...}]

with only the fields that say something: positions are attributes, not fields, so
they never appear; fields that are None or an empty list are left out (so a field a
newer Python added with an empty default does not change the form); a docstring
(the first statement of a function, class or module body when it is a string)
goes; `Constant.kind` (the `u` prefix) goes; adjacent string pieces of an f-string
are joined and empty ones dropped. Constant values are tagged with their type so
that `1`, `1.0` and `True` differ.

Standard library only: the cross-version test imports this module under
interpreters that have none of gitcache's dependencies.
"""

from __future__ import annotations

import ast
from typing import Any, Final

# Fields that never carry meaning for what the code does.
_DROPPED: Final = frozenset({"type_comment", "kind"})
_DOCUMENTED: Final = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)


def normalize(node: ast.AST, *, drop_decorators: bool = False) -> Any:
    """The canonical JSON value of a syntax tree (see the module docstring).

    `drop_decorators` leaves out the decorator list of `node` itself (a step's own
    `@gitcache.step(...)` line must not count); nested definitions keep theirs.
    """
    form = _node(node)
    if drop_decorators and isinstance(form, list) and len(form) == 2:
        form[1].pop("decorator_list", None)
    return form


def _node(node: ast.AST) -> Any:
    fields: dict[str, Any] = {}
    for name in node._fields:
        if name in _DROPPED:
            continue
        value: Any = getattr(node, name, None)
        if name == "body" and isinstance(node, _DOCUMENTED):
            value = _without_docstring(value)
        elif isinstance(node, ast.JoinedStr) and name == "values":
            value = _joined_values(value)
        elif isinstance(node, ast.FormattedValue) and name == "format_spec":
            if isinstance(value, ast.JoinedStr) and not _joined_values(value.values):
                value = None  # `{x:}` is `{x}`; 3.11 and 3.12 spell it differently
        elif isinstance(node, ast.Constant) and name == "value":
            fields[name] = constant(value)
            continue
        encoded = _value(value)
        if encoded is None or encoded == []:
            continue
        fields[name] = encoded
    return [type(node).__name__, fields]


def _value(value: Any) -> Any:
    if isinstance(value, ast.AST):
        return _node(value)
    if isinstance(value, list):
        # A None inside a list is positional (kw_defaults, dict keys): keep it.
        return [None if item is None else _value(item) for item in value]
    if value is None or isinstance(value, str | int):
        return value  # identifiers, operators' ints (conversion, level, is_async)
    raise TypeError(f"unexpected field value in a syntax tree: {value!r}")


def constant(value: Any) -> Any:
    """A literal's value, tagged by type (`1`, `1.0`, `True`, `'1'` all differ)."""
    if value is None:
        return ["None"]
    if value is Ellipsis:
        return ["Ellipsis"]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float | complex):
        return [type(value).__name__, repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, tuple | frozenset):  # constant folding in some trees
        items = [constant(v) for v in value]
        if isinstance(value, frozenset):
            items.sort(key=repr)
        return [type(value).__name__, items]
    raise TypeError(f"unexpected constant in a syntax tree: {value!r}")


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:]
    return body


def _joined_values(values: list[ast.expr]) -> list[ast.expr]:
    """f-string pieces with adjacent literal strings joined and empty ones dropped."""
    out: list[ast.expr] = []
    for item in values:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            if not item.value:
                continue
            last = out[-1] if out else None
            if isinstance(last, ast.Constant) and isinstance(last.value, str):
                out[-1] = ast.Constant(value=last.value + item.value)
                continue
        out.append(item)
    return out

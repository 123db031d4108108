"""`f.explain(...)`: why a call of a step would miss, in words (as `gitcache status`).

The call's components are compared with those of the step's latest record:
which argument, which function, class or constant of the code, which file's
content, which environment variable or version changed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitcache.canonical import canonical_json
from gitcache.python.session import session_for
from gitcache.record import Components
from gitcache.status import describe_changes, short

if TYPE_CHECKING:
    from gitcache.python.step import StepFunction


def explain(
    step: StepFunction[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> list[str]:
    """Reasons this call would run the function (printed to stdout, and returned)."""
    session = session_for(Path.cwd())
    call = step.sign(session, args, dict(kwargs))
    with session.lock:
        found = session.store.lookup(call.signature, step=step.name)
        latest = session.store.latest(step.name)
    # Records are named by their commit ids, as `gitcache status` and `log` name them.
    if found is not None:
        lines = [f"{step.name}: recorded (record {found.commit[:12]}): a hit"]
    elif latest is None:
        lines = [f"{step.name}: no record of this step yet: it would run"]
    else:
        reasons = python_changes(latest.record.components, call.components, step_function(step))
        lines = [f"{step.name}: would run; since its latest record {latest.commit[:12]}:"]
        lines += [f"  {r}" for r in reasons or ["the signature differs"]]
    print("\n".join(lines), file=sys.stdout)
    return lines


def step_function(step: StepFunction[Any, Any]) -> str:
    return str(step.__gitcache_function__.__qualname__)


def python_changes(old: Components, new: Components, function: str = "the step") -> list[str]:
    """What differs between two Python steps' components, in words."""
    if old.kind != new.kind or old.format != new.format:
        return describe_changes(old, new)
    reasons: list[str] = []
    if old.code != new.code:
        reasons.append(f"code of {function} changed")
    before, after = old.references or {}, new.references or {}
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            reasons.append(f"code now uses {key}")
        elif key not in after:
            reasons.append(f"code no longer uses {key}")
        elif before[key] != after[key]:
            reasons.append(f"code of {key} changed")
    for name in sorted(old.params.keys() | new.params.keys()):
        if name not in old.params:
            reasons.append(f"argument {name} is new ({_value(new.params[name])})")
        elif name not in new.params:
            reasons.append(f"argument {name} no longer counts")
        elif old.params[name] != new.params[name]:
            reasons.append(
                f"argument {name} changed ({_change(old.params[name], new.params[name])})"
            )
    for name in sorted((old.versions or {}).keys() | (new.versions or {}).keys()):
        was, now = (old.versions or {}).get(name), (new.versions or {}).get(name)
        if was != now:
            reasons.append(f"version of {name} changed ({was} -> {now})")
    # env, outputs: worded as for shell steps
    rest = describe_changes(
        old.replace(code="", params={}),
        new.replace(code="", params={}),
    )
    return reasons + rest


def _change(old: Any, new: Any) -> str:
    if _is_file(old) and _is_file(new):
        return f"file content {short(old['$file'])} -> {short(new['$file'])}"
    return f"{_value(old)} -> {_value(new)}"


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$file"}


def _value(value: Any) -> str:
    text = canonical_json(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."

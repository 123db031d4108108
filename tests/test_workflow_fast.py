"""workflow.py's fast check against the reference, the pydantic schema (workflowschema.py).

The fast check either defers (None) or gives exactly what the schema gives: never a
file the schema refuses, never another value or type where it converts.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gitcache import workflowschema
from gitcache.errors import ConfigError
from gitcache.starter import DEMO_TOML, DEMO_TOML_COMMENTED, STARTER_TOML
from gitcache.workflow import WorkflowFile, load_workflow, plain_config


def reference(raw: Any) -> WorkflowFile | None:
    """The schema's WorkflowFile for `raw`, or None if it refuses it."""
    try:
        model = workflowschema.WorkflowFile.model_validate(raw)
    except ValidationError:
        return None
    return workflowschema.converted(model)


def typed(value: Any) -> Any:
    """`value` as a structure where types count (1, 1.0 and True differ) and every
    dataclass field does (`rewrite_given` too), and NaN equals itself."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple((f.name, typed(getattr(value, f.name))) for f in dataclasses.fields(value)),
        )
    if isinstance(value, dict):
        return (type(value), tuple((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value), tuple(typed(v) for v in value))
    return (type(value), repr(value))


class Text(str):
    pass


class Table(dict[str, Any]):
    pass


texts = st.text(max_size=8)
good_names = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,8}", fullmatch=True),
    st.sampled_from(["fit.v2", "a.b.c", "x_1", "Train"]),
)
bad_names = st.sampled_from(
    ["", "bad name", "fit..v2", "a.lock", ".x", "-x", "x.", "a@{b", "a/b", "é", "a\n"]
)
env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
toml_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    texts,
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
# What a hand-written or non-TOML dict may hold: values pydantic's lax mode converts
# (1 for a float or bool, "true"/"yes"/"1" for a bool, 1.0 for an int, bytes for a
# str, tuples for lists), refuses, or that only look right (a str subclass, "A\n").
junk_scalars = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            -1,
            2**70,
            1.0,
            0.5,
            float("nan"),
            True,
            False,
            "true",
            "yes",
            "1",
            "on",
            "",
            "sh",
            "bash",
            "zsh",
            "block",
            "allow",
            "A\n",
            "\ud800",
            None,
            b"sh",
            b"x",
            Text("sh"),
            dt.date(2020, 1, 1),
        ]
    ),
    st.integers(),
    st.floats(),
    texts,
)
junk = st.recursive(
    junk_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.lists(texts, max_size=3).map(tuple),
        st.dictionaries(st.one_of(texts, st.integers()), inner, max_size=3),
        st.dictionaries(texts, inner, max_size=2).map(Table),
    ),
    max_leaves=6,
)


ODD_VALUES: list[Any] = [
    *[0, 1, -1, 2, 2**70, 1.0, 0.0, 2.5, float("nan"), True, False, None],
    *["", "true", "false", "yes", "on", "1", "0", "5", "sh", "bash", "allow", "A\n", "1X"],
    *["\ud800", b"sh", b"1", Text("sh"), Text("A"), dt.date(2020, 1, 1)],
    *[[], ["a"], ["A\n"], [1], [None], ["a", 2], ("a",), (), {"a"}, frozenset()],
    *[{}, {"a": 1}, {1: "a"}, Table(), Table(a="x"), {"run": "x"}, {"rewrite": "block"}],
]


@st.composite
def good_steps(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"run": draw(texts)}
    for key, values in [
        ("inputs", st.lists(texts, max_size=3)),
        ("outputs", st.lists(texts, max_size=3)),
        ("env", st.lists(env_names, max_size=3)),
        ("shell", st.sampled_from(["sh", "bash"])),
        ("matrix", st.dictionaries(texts, toml_values, max_size=3)),
        ("foreach", texts | st.lists(texts, max_size=3)),
    ]:
        if draw(st.booleans()):
            spec[key] = draw(values)
    return spec


@st.composite
def good_files(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key, values in [
        ("params", st.dictionaries(texts, toml_values, max_size=4)),
        ("steps", st.dictionaries(good_names, good_steps(), max_size=4)),
        ("require_clean", st.booleans()),
        ("dirty_ok", st.lists(texts, max_size=3)),
        ("remote", texts),
        ("push_on_record", st.booleans()),
        (
            "hooks",
            st.just({})
            | st.fixed_dictionaries({"rewrite": st.sampled_from(["protect", "block", "allow"])}),
        ),
        (
            "restore",
            st.fixed_dictionaries(
                {},
                optional={
                    "max_files": st.integers(min_value=1, max_value=2**63 - 1),
                    "max_bytes": st.integers(min_value=1, max_value=2**63 - 1),
                },
            ),
        ),
    ]:
        if draw(st.booleans()):
            raw[key] = draw(values)
    return raw


def _slots(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a nested dict/list, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            _slots(item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            _slots(item, found)
    return found


@st.composite
def slightly_wrong_files(draw: st.DrawFn) -> Any:
    """A good file with a few things changed: a value replaced, a key added or removed."""
    raw = draw(good_files())
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        slots = _slots(raw, [])
        action = draw(st.sampled_from(["replace", "add", "remove", "add_step", "top"]))
        if action == "top" or not slots:
            key = draw(st.sampled_from(["steps", "params", "hooks", "restore", "remote", "x"]))
            raw[key] = draw(junk)
            continue
        container, key = draw(st.sampled_from(slots))
        if action == "replace":
            container[key] = draw(st.sampled_from(ODD_VALUES).map(copy.deepcopy) | junk)
        elif action == "remove":
            del container[key]
        elif isinstance(container, dict):
            name = draw(st.one_of(bad_names, good_names, texts, st.integers()))
            value = draw(good_steps()) if action == "add_step" else draw(junk)
            container[name] = value
    steps = raw.setdefault("steps", {})
    if isinstance(steps, dict) and draw(st.integers(0, 3)) == 0:
        steps[draw(bad_names)] = draw(good_steps())
    return raw


FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(good_files())
def test_plain_files_are_taken_as_the_schema_gives_them(raw: dict[str, Any]) -> None:
    fast = plain_config(raw)
    assert fast is not None
    assert typed(fast) == typed(reference(raw))


@FAST
@given(st.one_of(slightly_wrong_files(), junk))
def test_fast_check_defers_or_agrees_with_the_schema(raw: Any) -> None:
    fast = plain_config(raw)
    if fast is not None:
        expected = reference(raw)
        assert expected is not None, "taken by the fast check, refused by the schema"
        assert typed(fast) == typed(expected)


BASE: dict[str, Any] = {
    "params": {"x": 1, "y": [1.5, "a"]},
    "steps": {
        "a": {
            "run": "x",
            "inputs": ["i"],
            "outputs": ["o"],
            "env": ["HOME"],
            "shell": "bash",
            "matrix": {"k": [1, 2]},
        },
        "b": {"run": "y", "foreach": ["f"]},
        "c": {"run": "z", "foreach": "g"},
    },
    "require_clean": True,
    "dirty_ok": ["d"],
    "remote": "origin",
    "push_on_record": False,
    "hooks": {"rewrite": "allow"},
    "restore": {"max_files": 5, "max_bytes": 6},
}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _changed(path: tuple[Any, ...], value: Any, key: Any = None) -> Any:
    """BASE (copied) with the value at `path` replaced, or `key` added there."""
    raw = copy.deepcopy(BASE)
    if not path:
        return value if key is None else {**raw, key: value}
    target = raw
    for part in path[:-1]:
        target = target[part]
    if key is None:
        target[path[-1]] = value
    elif isinstance(target[path[-1]], dict):
        target[path[-1]][key] = value
    return raw


def test_each_value_replaced_by_each_odd_value() -> None:
    """Every place in a full file, every near miss there: defer or agree."""
    assert plain_config(BASE) is not None
    cases = 0
    for path in _paths(BASE):
        for value in ODD_VALUES:
            raw = _changed(path, value)
            fast = plain_config(raw)
            if fast is not None:
                assert typed(fast) == typed(reference(raw)), (path, value)
            cases += 1
        for key in ["bogus", "", 1, "a b", "a..b", "run", "steps", "max_files", "rewrite"]:
            raw = _changed(path, {"run": "x"}, key)
            fast = plain_config(raw)
            if fast is not None:
                assert typed(fast) == typed(reference(raw)), (path, key)
    assert cases > 1000


@pytest.mark.parametrize(
    "raw",
    [
        {"require_clean": "true"},  # lax conversions: the schema's values
        {"require_clean": 1},
        {"push_on_record": "yes"},
        {"restore": {"max_files": 1.0}},
        {"restore": {"max_files": True}},
        {"restore": {"max_bytes": "5"}},
        {"steps": {"a": {"run": "x", "inputs": ("a",)}}},
        {"steps": {"a": {"run": b"x"}}},
        {"steps": {"a": {"run": Text("x")}}},
        {"steps": {"a": {"run": "x", "env": ["A\n"]}}},
        {"steps": {"a": {"run": "x", "foreach": ("a", "b")}}},
        {"steps": {"a": {"run": "x", "shell": b"sh"}}},
        {"steps": Table(a={"run": "x"})},
        {"hooks": {"rewrite": Text("block")}},
        {"dirty_ok": ["a", 1]},  # refused
        {"steps": {"a..b": {"run": "x"}}},
        {"steps": {"a": {"run": "x", "bogus": 1}}},
    ],
)
def test_unusual_values_defer(raw: dict[str, Any]) -> None:
    assert plain_config(raw) is None


TYPICAL = """\
[params]
lr = 0.01
epochs = 10
when = 2026-12-07

[steps.prepare]
inputs = ["data/raw.csv", "src/prepare.py"]
outputs = ["data/clean.csv"]
run = "python src/prepare.py {inputs[0]} {outputs}"

[steps.train]
inputs = ["data/clean.csv", "src/train.py"]
outputs = ["models/model.pkl"]
env = ["CUDA_VISIBLE_DEVICES"]
shell = "bash"
run = "python src/train.py --lr {lr} --epochs {epochs} {inputs[0]} {outputs}"

[steps.sweep]
inputs = ["src/sweep.py"]
outputs = ["out/{seed}.txt"]
matrix = {seed = [1, 2], opt = ["sgd", "adam"]}
run = "python src/sweep.py {seed} {opt} {lr} > {outputs}"

[steps."fit.v2"]
foreach = "data/*.csv"
outputs = ["out/{item}.n"]
run = "wc -l {item} > {outputs}"

[hooks]
rewrite = "block"

[restore]
max_files = 1000
"""


@pytest.mark.parametrize("text", [TYPICAL, STARTER_TOML, DEMO_TOML, DEMO_TOML_COMMENTED])
def test_usual_files_load_without_the_schema(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gitcache.workflowschema", None)  # an import fails
    path = tmp_path / "gitcache.toml"
    path.write_text(text)
    workflow = load_workflow(path, tmp_path)
    monkeypatch.undo()
    assert typed(workflow.config) == typed(reference(tomllib.loads(text)))


def test_rewrite_given_on_both_paths() -> None:
    """Whether the file sets `[hooks] rewrite` (hookpolicy.py), as pydantic's fields set."""
    given_values = []
    for raw in [{"hooks": {"rewrite": "protect"}}, {"hooks": {}}, {}]:
        fast, schema = plain_config(raw), reference(raw)
        assert fast is not None and schema is not None
        given_values.append((fast.hooks.rewrite_given, schema.hooks.rewrite_given))
    assert given_values == [(True, True), (False, False), (False, False)]
    assert not WorkflowFile().hooks.rewrite_given
    assert WorkflowFile().hooks == plain_config({"hooks": {"rewrite": "protect"}}).hooks  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[steps.a]\nrun = 3\n",
            "gitcache.toml: steps.a.run: Input should be a valid string (got 3)",
        ),
        (
            '[steps.a]\nrun = "x"\nshell = "zsh"\n',
            "gitcache.toml: steps.a.shell: Input should be 'sh' or 'bash' (got 'zsh')",
        ),
        (
            '[steps.a]\nrun = "x"\nenv = ["1X", 2]\n',
            "gitcache.toml: steps.a.env.0: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]*$' (got '1X') (and 1 more error)",
        ),
        (
            "[restore]\nmax_files = 0\n",
            "gitcache.toml: restore.max_files: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            'bogus = 1\n[steps."a b"]\nrun = 1\n',
            "gitcache.toml: steps.\"a b\": invalid step name 'a b': use only letters, "
            "digits, '.', '_' and '-' (it names the git ref refs/gitcache/step/a b) "
            "(and 2 more errors)",
        ),
        (
            '[steps."a b"]\nrun = "x"\n',
            "gitcache.toml: steps.\"a b\": invalid step name 'a b': use only letters, digits, "
            "'.', '_' and '-' (it names the git ref refs/gitcache/step/a b)",
        ),
        (
            "[hooks]\nrewrite = 1\n",
            "gitcache.toml: hooks.rewrite: Input should be 'protect', 'block' or 'allow' (got 1)",
        ),
    ],
)
def test_errors_are_the_schema_messages(toml: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "gitcache.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_workflow(path, tmp_path)
    assert str(caught.value) == message


def test_lax_values_load_as_the_schema_converts_them(tmp_path: Path) -> None:
    path = tmp_path / "gitcache.toml"
    path.write_text('require_clean = "true"\n[restore]\nmax_files = 5.0\n')
    config = load_workflow(path, tmp_path).config
    assert config.require_clean is True
    assert type(config.restore.max_files) is int and config.restore.max_files == 5

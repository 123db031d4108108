"""record.py's hand-written reading of record.json, held to the pydantic models of
recordschema.py: whatever it takes, the models take too and make into the same
record; whatever the models refuse, it leaves to them (so their message is the one
given). Documents are generated as gitcache writes them, then damaged."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitcache import record, recordschema
from gitcache.errors import UnsafeRecord
from gitcache.record import CHUNKED, Components, OutputFile, PythonRun, Record

OID = "a" * 40
SIG = "b" * 64

_names = st.sampled_from(
    ["a", "out", "é", "x.txt", ".", "..", ".git", ".GIT.", "", "a\\b", "sp ace", "\x00", "-n"]
)
_paths = st.lists(_names, min_size=1, max_size=3).map("/".join)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_oids = st.one_of(st.just(OID), st.sampled_from(["A" * 40, "a" * 39, "c" * 64, "", "g" * 40]))
_modes = st.sampled_from([0o100644, 0o100755, 0o120000, 0o040000, 420, True, 33188.0, "33188"])


@st.composite
def _outputs(draw: st.DrawFn, chunked: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": draw(_paths),
        "blob": draw(_oids),
        "mode": draw(_modes),
        "size": draw(st.sampled_from([0, 1, 4095, 4096, -1, 2.0, True])),
    }
    if chunked or draw(st.booleans()):
        out["chunks"] = draw(st.sampled_from([None, 1, 3, 0, 2.0]))
    return out


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    params = draw(st.dictionaries(st.text(max_size=4), _json, max_size=3))
    components: dict[str, Any] = {
        "format": draw(st.sampled_from([1, 2, 2.0, True])),
        "kind": draw(st.sampled_from(["shell", "python", "other"])),
        "code": "true",
        "params": params,
        "inputs": draw(st.dictionaries(_paths, _oids, max_size=2)),
        "outputs": draw(st.lists(_paths, max_size=2)),
        "env": draw(st.dictionaries(st.text(max_size=3), st.none() | st.text(max_size=3))),
    }
    for name in ("shell", "command", "executable", "references", "versions"):
        if draw(st.booleans()):
            components[name] = draw(
                st.sampled_from([None, "sh", ["a"], {"k": "v"}, {"k": None}, 1])
            )
    doc: dict[str, Any] = {
        "format": draw(st.sampled_from([1, 2, 3, 4, 3.0])),
        "step": draw(st.sampled_from(["fit", "a.b_c-d", ".x", "a..b", "x.lock", "é", ""])),
        "signature": draw(st.sampled_from([SIG, SIG.upper(), SIG[:-1]])),
        "components": components,
        "command": "true",
        "outputs": draw(st.lists(_outputs(), max_size=3)),
        "source_commit": draw(st.none() | _oids),
        "dirty": draw(st.sampled_from([False, True, 0, "false"])),
        "started_at": "2026-01-01T00:00:00+00:00",
        "duration": draw(st.sampled_from([0.0, 1.5, 2, -1.0, 1e308, "1"])),
        "exit_status": draw(st.sampled_from([0, 1, 0.0])),
        "host": "h",
        "gitcache_version": "0",
    }
    if draw(st.booleans()):
        doc["dirty_files"] = draw(st.sampled_from([[], ["a"], [1], "a"]))
    if draw(st.booleans()):
        doc["python"] = {
            "function": "m.py:f",
            "module": "m",
            "file": draw(st.sampled_from([None, "m.py", 3])),
            "python": "3.11",
            "packages": {"numpy": draw(st.sampled_from([None, "2.0", 2]))},
            "arguments": draw(st.dictionaries(st.text(max_size=3), _json, max_size=2)),
            "result": draw(st.sampled_from(["json", "pickle", "none", "csv"])),
        }
    if draw(st.booleans()):
        item = dict(list(params.items())[:1]) if draw(st.booleans()) else {"lr": 0.1}
        doc["item"] = item
    if draw(st.booleans()):  # format 3: the outputs not in chunks are the tree's
        doc["format"] = draw(st.sampled_from([3, 3, 3, 2, 4]))
        listed = doc.pop("outputs")
        chunks = st.sampled_from([2, 2, 2, None, 0])
        doc[CHUNKED] = [dict(o, chunks=draw(chunks)) for o in listed]
        if draw(st.sampled_from([False, False, True])):
            doc["outputs"] = []
    # damage: a key removed, one added, one replaced by any value
    action = draw(st.sampled_from(["none", "none", "drop", "add", "replace"]))
    key = draw(st.sampled_from(sorted(doc)))
    if action == "drop":
        del doc[key]
    elif action == "add":
        doc["extra"] = 1
    elif action == "replace":
        doc[key] = draw(_json)
    return doc


_TREE = [OutputFile(path="a/x.txt", blob=OID, mode=0o100644, size=3)]  # sorted: "a" clashes


def _both(data: bytes) -> tuple[Record | None, Record | str]:
    """(what the hand-written reading gives, None when it defers; what the models give,
    or their message)."""
    try:
        fast: Record | None = record._fast(data, lambda: list(_TREE))
    except record._Defer:
        fast = None
    try:
        slow: Record | str = recordschema.parse_record(data, "r", lambda: list(_TREE))
    except UnsafeRecord as exc:
        slow = exc.message
    return fast, slow


@given(_documents())
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_hand_written_reading_takes_only_what_the_models_take_and_the_same(
    doc: dict[str, Any],
) -> None:
    data = json.dumps(doc, ensure_ascii=False).encode()
    fast, slow = _both(data)
    if fast is not None:
        assert fast == slow
    # the entry point gives the models' answer whichever way it goes
    try:
        assert record.parse_record(data, "r", lambda: list(_TREE)) == slow
    except UnsafeRecord as exc:
        assert exc.message == slow


def _written() -> Record:
    return Record(
        step="fit",
        signature=SIG,
        components=Components(
            format=2,
            kind="shell",
            code="echo {v}",
            shell="sh",
            command="echo 0.5",
            params={"v": 0.5, "nested": {"a": [1, None, "é"]}},
            inputs={"data/in.csv": OID},
            executable=["run.sh"],
            outputs=["out"],
            env={"HOME": None},
        ),
        command="echo 0.5",
        outputs=[
            OutputFile(path="out/a", blob=OID, mode=0o100644, size=3),
            OutputFile(path="out/big", blob=OID, mode=0o100755, size=2**30, chunks=120),
        ],
        source_commit=None,
        dirty=True,
        dirty_files=["x"],
        started_at="2026-01-01T00:00:00+00:00",
        duration=0.25,
        exit_status=0,
        host="h",
        gitcache_version="0",
        python=PythonRun(
            function="m.py:f", module="m", file="m.py", python="3.11", packages={"n": None}
        ),
        item={"v": 0.5},
    )


def test_what_gitcache_writes_is_read_by_hand_and_as_the_models_dump_it() -> None:
    written = _written()
    data = written.to_json()
    fast, slow = _both(data)
    assert fast == slow == written
    reference = recordschema.Record.model_validate(json.loads(data)).model_dump(mode="json")
    assert json.loads(data) == reference == written.document()


def test_values_that_are_not_plain_json_are_dumped_as_the_models_dump_them() -> None:
    """A tuple, a set of one, a datetime: converted by pydantic, as before."""
    import datetime

    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    components = _written().components.replace(params={"t": (1, 2), "when": when, "s": {3}})
    doc = components.document()
    assert doc["params"] == {"t": [1, 2], "when": "2026-01-02T03:04:05Z", "s": [3]}
    reference = recordschema.Components(**components.fields()).model_dump(mode="json")
    assert doc == reference


def test_a_record_with_values_that_are_not_plain_json_keeps_its_chunked_outputs() -> None:
    written = _written()
    python = written.python
    assert python is not None
    odd = dataclasses.replace(
        written, python=dataclasses.replace(python, arguments={"shape": (2, 3)})
    )
    data = odd.to_json()
    read = record.parse_record(data, "r", list)
    assert read.outputs == written.outputs  # the chunk count included
    assert read.python is not None and read.python.arguments == {"shape": [2, 3]}
    assert dataclasses.replace(read, python=python) == written


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"format": NaN}', "NaN"),
        (b'{"host": "\\ud800"}', "a surrogate escape"),
        ("{}".encode("utf-16"), "not UTF-8"),
    ],
)
def test_what_json_and_pydantic_could_read_differently_is_left_to_the_models(
    data: bytes, why: str
) -> None:
    with pytest.raises(record._Defer):
        record._fast(data, list)


@pytest.mark.parametrize("depth", [900, 5_000, 100_000])
def test_a_record_nested_deeper_than_any_parser_goes_is_refused_not_a_crash(depth: int) -> None:
    """json and Python recursion give up at ~1,000 levels, pydantic's parser at 200: a
    fetched record nested deeper is refused with a message, never an internal error."""
    data = b'{"components": {"params": {"v": ' + b"[" * depth + b"]" * depth + b"}}}"
    with pytest.raises(UnsafeRecord, match="recursion limit"):
        record.parse_record(data, "r", list)


def test_deep_values_of_a_python_step_are_dumped_by_the_models() -> None:
    deep: list[object] = []
    for _ in range(5_000):
        deep = [deep]
    assert not record.is_plain({"v": deep})


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_a_python_result_nested_too_deeply_is_refused_not_a_crash(depth: int) -> None:
    from gitcache.python import results
    from gitcache.python.errors import ResultError

    data = b"[" * depth + b"]" * depth
    with pytest.raises(ResultError, match="nested too deeply"):
        results.load(lambda name: data if name == results.RESULT_JSON else None, "json", False, "r")


def _naive_claims(whole: list[str], chunked: list[str]) -> list[bool]:
    """The rule as it was written before (a scan of every path per chunked output)."""
    paths = set(whole)
    found = []
    for path in chunked:
        parents = path.split("/")
        clash = path in paths or any("/".join(parents[:n]) in paths for n in range(1, len(parents)))
        ok = not (clash or any(p.startswith(path + "/") for p in paths))
        found.append(ok)
        if ok:
            paths.add(path)
    return found


_short_paths = st.lists(st.sampled_from(["a", "b", "a-1", "é"]), min_size=1, max_size=4).map(
    "/".join
)


@given(st.lists(_short_paths, max_size=8), st.lists(_short_paths, max_size=6))
def test_one_path_each_is_the_rule_as_it_was_written(whole: list[str], chunked: list[str]) -> None:
    paths = record.OnePathEach(whole)
    assert [paths.claim(p) for p in chunked] == _naive_claims(whole, chunked)


def test_a_key_twice_means_its_last_value_in_both_readings() -> None:
    """json and pydantic's parser both keep the last value (were pydantic's to refuse
    it or keep the first, this fails and the check must defer on a key twice)."""
    data = _written().to_json()
    twice = data.replace(b'"host": "h"', b'"host": "first", "host": "h"', 1)
    assert twice != data
    fast, slow = _both(twice)
    assert fast == slow == _written()


@pytest.mark.parametrize("allow_pickle", [False, True])
def test_a_python_result_too_deep_to_store_is_a_result_error(allow_pickle: bool) -> None:
    from gitcache.python import results
    from gitcache.python.errors import ResultError

    deep: list[object] = []
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(ResultError, match=r"nested too deeply|cannot be pickled either"):
        results.encode(deep, allow_pickle)

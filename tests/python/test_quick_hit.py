"""A hit in a new process reads its record without libgit2 (python/quick.py) when it
can, and the full way otherwise: packed objects, records it must refuse."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitcache import recordschema
from gitcache.gitrepo import MODE_FILE, GitRepo, RefUpdate, TreeEntry
from gitcache.python import quick
from gitcache.python.session import GitcacheWarning, forget_sessions, session_for
from gitcache.python.signing import components_signature
from gitcache.record import Components
from gitcache.signature import signature_of
from tests.python.conftest import PyRepo

STEPS = """
from pathlib import Path

import gitcache


def count(name: str) -> None:
    with Path("calls.txt").open("a") as handle:
        handle.write(name + "\\n")


@gitcache.step
def scale(x: int, y: float) -> float:
    count("scale")
    return x * y


@gitcache.step
def pair(x: int) -> dict[str, list[int]]:
    count("pair")
    return {"$x": [x, x + 1]}
"""


def _calls(pyrepo: PyRepo) -> list[str]:
    path = pyrepo.root / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _new_process(*steps: Any) -> None:
    """What a new process starts from: no session, no memo."""
    forget_sessions()
    for step in steps:
        step._memo.clear()
        step._fast.clear()


@pytest.fixture
def steps(pyrepo: PyRepo):  # type: ignore[no-untyped-def]
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\n")
    module = pyrepo.module("steps.py", STEPS)
    pyrepo.commit("steps")
    return module


def test_a_hit_reads_the_record_without_opening_the_repository(pyrepo: PyRepo, steps) -> None:
    assert steps.scale(3, 0.5) == 1.5
    assert steps.pair(2) == {"$x": [2, 3]}
    _new_process(steps.scale, steps.pair)
    assert steps.scale(3, 0.5) == 1.5
    assert steps.pair(2) == {"$x": [2, 3]}
    session = session_for(pyrepo.root)
    assert session._repo is None  # libgit2 never opened
    assert _calls(pyrepo) == ["scale", "pair"]


def test_a_hit_on_a_record_that_is_not_the_latest_moves_it_the_full_way(
    pyrepo: PyRepo, steps
) -> None:
    steps.scale(3, 0.5)
    first = pyrepo.refs()["refs/gitcache/step/scale"]
    steps.scale(4, 0.5)
    second = pyrepo.refs()["refs/gitcache/step/scale"]
    assert first != second
    _new_process(steps.scale)
    assert steps.scale(3, 0.5) == 1.5  # the full way: it moves the pointer under the lock
    assert pyrepo.refs()["refs/gitcache/step/scale"] == first
    assert session_for(pyrepo.root)._repo is not None
    _new_process(steps.scale)
    assert steps.scale(3, 0.5) == 1.5  # already the latest: nothing written, no libgit2
    assert session_for(pyrepo.root)._repo is None
    assert _calls(pyrepo) == ["scale", "scale"]


def test_after_git_gc_a_hit_reads_packed_objects_through_libgit2(pyrepo: PyRepo, steps) -> None:
    steps.scale(3, 0.5)
    pyrepo.git("gc", "-q", "--prune=now")
    _new_process(steps.scale)
    session = session_for(pyrepo.root)
    call = steps.scale.sign(session, (3, 0.5), {})
    assert quick.read_record(session.dirs, call.signature) is None  # packed
    assert steps.scale(3, 0.5) == 1.5
    assert _calls(pyrepo) == ["scale"]


def test_a_record_filed_under_another_signature_is_refused_the_full_way(
    pyrepo: PyRepo, steps
) -> None:
    steps.scale(3, 0.5)
    steps.scale(5, 0.5)
    refs = pyrepo.refs()
    latest = refs["refs/gitcache/step/scale"]  # the record of scale(5, 0.5)
    other = next(r for r, c in refs.items() if "/sig/" in r and c != latest)
    pyrepo.git("update-ref", other, latest)  # scale(3, 0.5)'s ref names 5's record
    _new_process(steps.scale)
    session = session_for(pyrepo.root)
    call = steps.scale.sign(session, (3, 0.5), {})
    assert quick.read_record(session.dirs, call.signature) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert steps.scale(3, 0.5) == 1.5
    assert any(
        issubclass(w.category, GitcacheWarning) and "it is for signature" in str(w.message)
        for w in caught
    )
    assert _calls(pyrepo) == ["scale", "scale", "scale"]


def test_a_damaged_result_object_is_refused_by_the_quick_reader(pyrepo: PyRepo, steps) -> None:
    steps.scale(3, 0.5)
    _new_process(steps.scale)
    session = session_for(pyrepo.root)
    call = steps.scale.sign(session, (3, 0.5), {})
    found = quick.read_record(session.dirs, call.signature)
    assert found is not None
    assert found.read("result.json") == b"1.5"
    oid = found.tree["result.json"][1]
    path = pyrepo.root / ".git" / "objects" / oid[:2] / oid[2:]
    record_blob = found.tree["record.json"][1]
    data = (pyrepo.root / ".git" / "objects" / record_blob[:2] / record_blob[2:]).read_bytes()
    path.chmod(0o644)
    path.write_bytes(data)  # another object's bytes under result.json's name
    with pytest.raises(quick.NotQuick):
        found.read("result.json")
    with pytest.raises(quick.NotQuick):
        found.read("result/missing.npy")


ANY_STEP = """
import enum
from typing import Any

import gitcache


class Color(str, enum.Enum):
    RED = "red"


@gitcache.step(env=["GITCACHE_TEST_VAR"], versions=["python", "pydantic"])
def anything(x: Any, label: str = "a") -> int:
    return 1
"""

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: not plain, pydantic's dump
    st.text(max_size=5),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
        st.dictionaries(st.integers(), inner, max_size=2),
    ),
    max_leaves=8,
)


@given(_values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_call_is_signed_as_pydantic_would_sign_its_components(pyrepo: PyRepo, value: Any) -> None:
    module = _any_step(pyrepo)
    session = session_for(pyrepo.root)
    call = module.anything.sign(session, (value,), {})
    components = Components(**call.document)
    reference = recordschema.Components(**components.fields()).model_dump(mode="json")
    assert call.document == components.document() == reference
    assert call.signature == signature_of(components) == signature_of(call.components)
    assert components_signature(components) == call.signature
    enum_call = module.anything.sign(session, (module.Color.RED,), {})
    assert enum_call.signature == signature_of(enum_call.components)


_MODULES: dict[Any, Any] = {}


def _any_step(pyrepo: PyRepo) -> Any:
    """One module per repository (hypothesis calls the test many times per fixture)."""
    if pyrepo.root not in _MODULES:
        _MODULES.clear()
        _MODULES[pyrepo.root] = pyrepo.module("anything.py", ANY_STEP)
    return _MODULES[pyrepo.root]


def _forge_as_pair(pyrepo: PyRepo) -> tuple[str, str]:
    """The only signature ref's record, rewritten to say step `pair`: (ref, forged commit)."""
    gr = GitRepo.discover(pyrepo.root)
    (name,) = (r for r in pyrepo.refs() if "/sig/" in r)
    legit = gr.ref_target(name)
    assert legit is not None
    data = json.loads(gr.read_commit_file(legit, "record.json") or b"")
    data["step"] = "pair"
    entries = [e for e in gr.walk_tree(gr.commit_tree(legit)) if e.path != "record.json"]
    entries.append(TreeEntry("record.json", gr.write_blob(json.dumps(data).encode()), MODE_FILE))
    forged = gr.write_commit(gr.write_tree(entries), gr.commit_parents(legit), "forged\n")
    gr.update_refs([RefUpdate(name, forged, legit)])
    return name, forged


def test_a_record_that_names_another_step_is_refused_the_full_way(pyrepo: PyRepo, steps) -> None:
    """The step is not part of the signature: a record of scale(3, 0.5)'s signature that
    says step `pair` is not scale's, and would be listed as pair's."""
    steps.scale(3, 0.5)
    name, forged = _forge_as_pair(pyrepo)
    _new_process(steps.scale)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert steps.scale(3, 0.5) == 1.5
    assert any(
        issubclass(w.category, GitcacheWarning)
        and "its record.json says step 'pair'" in str(w.message)
        for w in caught
    ), [str(w.message) for w in caught]
    assert _calls(pyrepo) == ["scale", "scale"]  # ran again
    assert pyrepo.refs()[name] != forged  # its record replaced the forged one


def test_a_task_is_not_recorded_by_a_record_that_names_another_step(pyrepo: PyRepo, steps) -> None:
    """A task's status (`Task.is_recorded`, and `gitcache run` of task files, which
    skips recorded ones) asks for a record of its own step, as a call does."""
    steps.scale(3, 0.5)
    task = steps.scale.task(3, 0.5)
    assert task.is_recorded()
    _forge_as_pair(pyrepo)
    _new_process(steps.scale)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert not steps.scale.task(3, 0.5).is_recorded()

"""The cache of normalized code forms (.git/gitcache/python-code-v1/): used files stay
fresh, `gitcache gc` drops the unused ones and keeps the rest bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gitcache.python import code
from tests.python.conftest import PyRepo

STEP = """
import gitcache

@gitcache.step
def double(x: int) -> int:
    return 2 * x
"""

DAY = 86400


def _forms(pyrepo: PyRepo) -> list[Path]:
    return sorted((pyrepo.root / ".git" / "gitcache" / code.FORMS_DIR).glob("*/*.json"))


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def test_reading_a_form_file_marks_it_used(pyrepo: PyRepo) -> None:
    pyrepo.write("dbl.py", STEP)
    pyrepo.commit("step")
    pyrepo.python("import dbl; dbl.double(1)")
    [form] = _forms(pyrepo)
    _age(form, 100)
    pyrepo.python("import dbl; dbl.double(1)")  # a hit in a new process reads it
    assert time.time() - form.stat().st_mtime < DAY


def test_gc_drops_form_files_unused_for_a_month(pyrepo: PyRepo) -> None:
    pyrepo.write("dbl.py", STEP)
    pyrepo.commit("step")
    pyrepo.python("import dbl; dbl.double(1)")
    [used] = _forms(pyrepo)
    # An earlier version of the file, not read since.
    pyrepo.write("dbl.py", STEP + "\n\ndef helper() -> int:\n    return 1\n")
    pyrepo.python("import dbl; dbl.double(1)")
    [stale] = [f for f in _forms(pyrepo) if f != used]
    _age(stale, code.FORMS_UNUSED_DAYS + 1)
    _age(used, code.FORMS_UNUSED_DAYS - 1)
    done = pyrepo.run("gc", "--keep", "5")
    assert done.exit_code == 0, done.stderr
    assert "gitcache: dropped 1 cached code form file (unused for 30 days" in done.stderr
    assert _forms(pyrepo) == [used]
    # -n drops nothing and says nothing about forms.
    _age(used, code.FORMS_UNUSED_DAYS + 1)
    dry = pyrepo.run("gc", "--keep", "5", "-n")
    assert dry.exit_code == 0 and "code form" not in dry.stderr
    assert _forms(pyrepo) == [used]


def test_prune_keeps_the_most_recently_used_within_the_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / code.FORMS_DIR
    paths = []
    for i in range(5):
        path = directory / f"{i:02x}" / f"{i:02x}{'0' * 38}.json"
        path.parent.mkdir(parents=True)
        path.write_text("{}" + " " * 98)  # 100 bytes
        _age(path, 5 - i)  # the higher i, the more recently used
        paths.append(path)
    writing = directory / "00" / ".forms-abc"  # another process's write in progress
    writing.write_text("x" * 1000)
    monkeypatch.setattr(code, "FORMS_MAX_BYTES", 250)
    assert code.prune_forms(tmp_path, time.time()) == 3
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert writing.exists()
    assert sorted(p.name for p in directory.iterdir()) == ["00", "03", "04"]  # empty ones go
    assert code.prune_forms(tmp_path / "nowhere", time.time()) == 0


HELPERS = """
import gitcache

LIMIT = 3


class Box:
    def __init__(self, n: int) -> None:
        self.n = n


def helper(x: int) -> int:
    return x + LIMIT


@gitcache.step
def boxed(x: int) -> int:
    return helper(Box(x).n)
"""


def test_a_cached_form_brings_its_hash_and_the_code_is_the_same(pyrepo: PyRepo) -> None:
    from gitcache.python.session import forget_sessions, session_for
    from gitcache.python.signing import Signer

    module = pyrepo.module("boxed.py", HELPERS)
    pyrepo.commit("step")
    session = session_for(pyrepo.root)
    fresh = module.boxed.signer.code(session.root, session.forms)  # parsed, then cached
    [form_file] = _forms(pyrepo)
    cached = __import__("json").loads(form_file.read_text())
    forms = {k: v for k, v in cached.items() if k[:2] in ("f:", "c:")}  # of functions, classes
    assert all(isinstance(value[-1], str) and len(value[-1]) == 64 for value in forms.values())
    forget_sessions()
    session = session_for(pyrepo.root)
    again = Signer(module.boxed.__gitcache_function__, module.boxed.options)
    from_cache = again.code(session.root, session.forms)
    assert set(from_cache.document.digests) == {  # every function and class: not LIMIT
        k for k in from_cache.document.entries if not k.endswith(":LIMIT")
    }
    uncached = Signer(module.boxed.__gitcache_function__, module.boxed.options).code(
        session.root, None
    )
    assert from_cache == fresh == uncached
    assert from_cache.references == uncached.references
    assert len(from_cache.references) == 3  # helper, Box, LIMIT

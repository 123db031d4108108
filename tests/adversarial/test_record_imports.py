"""A record's `python` section (not part of its signature, so a fetched record may say
anything there) never makes gitcache import a module or run a file from outside the
repository: `gitcache.records(...).load()` and `.task()` import a step only from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitcache.gitrepo import MODE_FILE, GitRepo, RefUpdate, TreeEntry
from tests.python.conftest import PyRepo, pyrepo  # noqa: F401 - the fixture

STEPS = """
import gitcache

@gitcache.step
def sq(x: int) -> int:
    return x * x
"""


def _rewrite_python_section(repo: PyRepo, **changes: object) -> None:
    """The record under the same signature, its python.module/function replaced."""
    ((ref, commit),) = repo.refs("refs/gitcache/sig/").items()
    gr = GitRepo.discover(repo.root)
    entries = []
    for path in repo.git("ls-tree", "-r", "--name-only", commit).split():
        data = repo.git("show", f"{commit}:{path}").encode()
        if path == "record.json":
            record = json.loads(data)
            record["python"].update(changes)
            data = json.dumps(record).encode()
        entries.append(TreeEntry(path, gr.write_blob(data), MODE_FILE))
    forged = gr.write_commit(gr.write_tree(entries), gr.commit_parents(commit), "forged\n")
    gr.update_refs([RefUpdate(ref, forged)])


@pytest.mark.parametrize(
    ("module", "function"),
    [
        ("__main__", "{evil}:sq"),  # an absolute path
        ("__main__", "../evil.py:sq"),  # out of the repository
        ("evil", "steps.py:sq"),  # a module that is no file of the repository
    ],
)
def test_a_record_never_makes_gitcache_run_code_from_outside(
    pyrepo: PyRepo,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    module: str,
    function: str,
) -> None:
    outside = pyrepo.root.parent
    marker = tmp_path / "ran"
    evil = outside / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    pyrepo.write("steps.py", STEPS)
    pyrepo.python("import steps; print(steps.sq(3))")
    _rewrite_python_section(pyrepo, module=module, function=function.format(evil=evil))
    done = pyrepo.python(
        "import sys, gitcache\n"
        f"sys.path.append({str(outside)!r})\n"  # `evil` could be imported by name
        "r = gitcache.records('sq').latest()\n"
        "print(r.load())\n"
        "try:\n"
        "    r.task()\n"
        "except gitcache.errors.GitcacheError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert done.stdout.splitlines()[0] == "9"
    if module == "__main__":  # no module to import and a file refused: no step to call
        assert "refused: record" in done.stdout
    assert not marker.exists()


def test_an_upstream_task_in_a_records_arguments_is_imported_only_from_the_repository(
    pyrepo: PyRepo,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    (pyrepo.root.parent / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    pyrepo.write("steps.py", STEPS)
    pyrepo.python("import steps; print(steps.sq(3))")
    upstream = {"function": {"module": "evil", "qualname": "sq", "file": None}, "arguments": {}}
    _rewrite_python_section(pyrepo, arguments={"x": {"$task": upstream}})
    done = pyrepo.python(
        "import sys, gitcache\n"
        f"sys.path.append({str(pyrepo.root.parent)!r})\n"
        "try:\n"
        "    gitcache.records('sq').latest().task()\n"
        "except gitcache.errors.GitcacheError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert "refused: record" in done.stdout and "cannot import module 'evil'" in done.stdout
    assert not marker.exists()


def test_a_genuine_record_still_gives_its_task(pyrepo: PyRepo) -> None:  # noqa: F811
    pyrepo.write("steps.py", STEPS)
    pyrepo.python("import steps; print(steps.sq(3))")
    done = pyrepo.python(
        "import gitcache\nr = gitcache.records('sq').latest()\nprint(r.load(), r.task().run())"
    )
    assert done.stdout.strip() == "9 9"

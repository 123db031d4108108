"""@gitcache.step: calls run once, are recorded in git, and later calls load the record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import gitcache
from gitcache.python.errors import ArgumentError, ResultError, StepDefinitionError
from gitcache.python.session import GitcacheWarning
from tests.python.conftest import PyRepo

STEPS = """
import sys
from pathlib import Path

import numpy as np
from pydantic import BaseModel

import gitcache

COUNTER = Path("calls.txt")


def count(name: str) -> None:
    with COUNTER.open("a") as handle:
        handle.write(name + "\\n")


class Stats(BaseModel):
    mean: float
    n: int


@gitcache.step
def analyze(data: gitcache.File, dt: float, nbins: int = 10) -> Stats:
    count("analyze")
    print("analyzing", dt)
    print("to stderr", file=sys.stderr)
    values = [float(v) for v in data.read_text().split()]
    return Stats(mean=sum(values) / len(values) * dt, n=nbins)


@gitcache.step
def arrays(n: int) -> dict[str, np.ndarray]:
    count("arrays")
    return {"x": np.arange(n, dtype=np.float64), "y": np.ones((2, n), order="F")}


@gitcache.step(outputs=["figs/{name}.txt"])
def plot(name: str, value: int) -> int:
    count("plot")
    Path(f"figs/{name}.txt").write_text(f"{name}={value}\\n")
    return value * 2


@gitcache.step(store=False)
def memory_only(n: int) -> list[int]:
    count("memory_only")
    return list(range(n))


@gitcache.step
def fails(n: int) -> int:
    count("fails")
    raise ValueError(f"bad n {n}")


@gitcache.step
def wrong_type(n: int) -> int:
    count("wrong_type")
    return "not a number"  # type: ignore[return-value]


@gitcache.step
def unstorable(n: int) -> object:
    count("unstorable")
    return object()


@gitcache.step
def rewrites_its_input(data: gitcache.File) -> str:
    count("rewrites_its_input")
    text = data.read_text()
    with open(data, "w") as out:  # as another process could while the step runs
        out.write(text + "more\\n")
    return text


@gitcache.step(ignore=["verbose"], env=["GITCACHE_TEST_VAR"])
def options(n: int, verbose: bool = False) -> int:
    count("options")
    return n
"""


def calls(pyrepo: PyRepo) -> list[str]:
    path = pyrepo.root / "calls.txt"
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def steps(pyrepo: PyRepo):  # type: ignore[no-untyped-def]
    pyrepo.write("data.txt", "1 2 3\n")
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\nfigs/\n")
    module = pyrepo.module("steps.py", STEPS)
    pyrepo.commit("steps")
    return module


def test_a_call_runs_once_records_in_git_and_a_new_process_loads_it(
    pyrepo: PyRepo, steps, capsys: pytest.CaptureFixture[str]
) -> None:
    first = steps.analyze(gitcache.File("data.txt"), dt=0.5)
    assert first == steps.Stats(mean=1.0, n=10)
    out = capsys.readouterr()
    assert "analyzing 0.5" in out.out and "to stderr" in out.err  # shown live
    refs = pyrepo.refs()
    assert "refs/gitcache/step/analyze" in refs
    commit = refs["refs/gitcache/step/analyze"]
    record = json.loads(pyrepo.git("show", f"{commit}:record.json"))
    assert record["components"]["kind"] == "python"
    assert record["components"]["params"]["dt"] == 0.5
    assert record["components"]["params"]["data"] == {"$file": pyrepo.blob("data.txt")}
    assert record["python"]["files"] == {"data": "data.txt"}
    assert record["source_commit"] == pyrepo.head()
    assert pyrepo.git("rev-parse", f"{commit}^").strip() == pyrepo.head()  # parent = HEAD
    assert json.loads(pyrepo.git("show", f"{commit}:result.json")) == {"mean": 1.0, "n": 10}
    assert pyrepo.git("show", f"{commit}:logs/stdout") == "analyzing 0.5\n"
    assert pyrepo.git("show", f"{commit}:logs/stderr") == "to stderr\n"
    # Another process: loaded from git, the function does not run.
    done = pyrepo.python(
        "import gitcache, steps; print(steps.analyze(gitcache.File('data.txt'), dt=0.5))"
    )
    assert done.stdout.strip() == "mean=1.0 n=10"
    assert calls(pyrepo) == ["analyze"]
    pyrepo.git("fsck", "--strict")


def test_changing_an_argument_or_the_file_content_runs_again(pyrepo: PyRepo, steps) -> None:
    steps.analyze(gitcache.File("data.txt"), dt=0.5)
    steps.analyze(gitcache.File("data.txt"), dt=0.25)
    steps.analyze("data.txt", 0.5)  # same call, given positionally and as a path
    assert calls(pyrepo) == ["analyze", "analyze"]
    pyrepo.write("copy.txt", "1 2 3\n")
    steps.analyze(gitcache.File("copy.txt"), dt=0.5)  # same content, another path: a hit
    assert calls(pyrepo) == ["analyze", "analyze"]
    pyrepo.write("data.txt", "4 5 6\n")
    assert steps.analyze(gitcache.File("data.txt"), dt=0.5).mean == 2.5
    assert calls(pyrepo) == ["analyze"] * 3


def test_a_repeated_call_is_answered_from_memory(pyrepo: PyRepo, steps) -> None:
    first = steps.analyze(gitcache.File("data.txt"), dt=0.5)
    (pyrepo.root / ".git" / "refs" / "gitcache").rename(pyrepo.root / ".git" / "moved")
    assert steps.analyze(gitcache.File("data.txt"), dt=0.5) is first  # git not asked
    assert steps.arrays(3)["x"].tolist() == [0.0, 1.0, 2.0]
    assert steps.arrays(3) is steps.arrays(3)


def test_the_memo_sees_a_changed_file_given_as_a_path(pyrepo: PyRepo, steps) -> None:
    assert steps.analyze("data.txt", 1.0).mean == 2.0
    assert steps.analyze("data.txt", 1.0).mean == 2.0
    pyrepo.write("data.txt", "7 8 9\n")  # same size: only the content tells
    assert steps.analyze("data.txt", 1.0).mean == 8.0
    assert calls(pyrepo) == ["analyze", "analyze"]


def test_a_repeated_call_costs_microseconds(pyrepo: PyRepo, steps) -> None:
    import time

    data = gitcache.File("data.txt")
    steps.analyze(data, dt=0.5)
    steps.options(2)
    for call in (lambda: steps.analyze(data, dt=0.5), lambda: steps.options(2)):
        start = time.perf_counter()
        for _ in range(1000):
            call()
        per_call = (time.perf_counter() - start) / 1000
        assert per_call < 100e-6  # ~4 µs here; the bound leaves room for a busy machine


def test_numpy_results_are_npy_blobs_read_back_without_pickle(pyrepo: PyRepo, steps) -> None:
    steps.arrays(4)
    commit = pyrepo.refs()["refs/gitcache/step/arrays"]
    tree = pyrepo.git("ls-tree", "-r", "--name-only", commit).split()
    assert {"result.json", "result/x.npy", "result/y.npy"} <= set(tree)
    assert json.loads(pyrepo.git("show", f"{commit}:result.json")) == {
        "x": {"$npy": "x"},
        "y": {"$npy": "y"},
    }
    done = pyrepo.python(
        "import steps, numpy as np; r = steps.arrays(4); "
        "print(r['x'].tolist(), r['y'].shape, r['y'].dtype)"
    )
    assert done.stdout.strip() == "[0.0, 1.0, 2.0, 3.0] (2, 4) float64"
    assert calls(pyrepo) == ["arrays"]


def test_outputs_are_stored_and_restored_like_shell_outputs(pyrepo: PyRepo, steps) -> None:
    assert steps.plot("a", 2) == 4
    commit = pyrepo.refs()["refs/gitcache/step/plot"]
    assert pyrepo.git("show", f"{commit}:outputs/figs/a.txt") == "a=2\n"
    (pyrepo.root / "figs" / "a.txt").unlink()
    done = pyrepo.python("import steps; print(steps.plot('a', 2))")
    assert done.stdout.strip() == "4"
    assert pyrepo.read("figs/a.txt") == "a=2\n"
    assert calls(pyrepo) == ["plot"]


def test_a_hand_edited_output_is_not_overwritten_by_a_recorded_call(pyrepo: PyRepo, steps) -> None:
    assert steps.plot("a", 2) == 4
    pyrepo.write("figs/a.txt", "edited by hand\n")
    done = pyrepo.python("import steps; print(steps.plot('a', 2))", check=False)
    assert done.returncode != 0
    assert "WorktreeConflict: restore would overwrite figs/a.txt, which was modified" in (
        done.stderr
    )
    assert pyrepo.read("figs/a.txt") == "edited by hand\n"
    assert calls(pyrepo) == ["plot"]


def test_store_false_keeps_results_in_memory_only(pyrepo: PyRepo, steps) -> None:
    assert steps.memory_only(3) == [0, 1, 2]
    assert steps.memory_only(3) == [0, 1, 2]
    assert calls(pyrepo) == ["memory_only"]
    assert "refs/gitcache/step/memory_only" not in pyrepo.refs()


def test_a_function_that_raises_writes_no_record_and_its_exception_propagates(
    pyrepo: PyRepo, steps
) -> None:
    with pytest.raises(ValueError, match="bad n 3") as caught:
        steps.fails(3)
    # The original exception, its traceback ending in the user's function.
    assert type(caught.value) is ValueError
    assert caught.traceback[-1].name == "fails"
    assert pyrepo.refs() == {}
    with pytest.raises(ValueError):
        steps.fails(3)  # not memoized either
    assert calls(pyrepo) == ["fails", "fails"]
    assert not list((pyrepo.root / ".git" / "gitcache" / "tmp").glob("*/*"))


def test_a_result_that_does_not_match_the_hint_is_an_error_and_no_record(
    pyrepo: PyRepo, steps
) -> None:
    with pytest.raises(
        ResultError,
        match=r"step wrong_type returned a str, which does not match its return type int",
    ):
        steps.wrong_type(1)
    with pytest.raises(ResultError, match=r"cannot be stored as JSON or \.npy"):
        steps.unstorable(1)
    assert pyrepo.refs() == {}


def test_an_input_file_changed_while_the_call_runs_writes_no_record(pyrepo: PyRepo, steps) -> None:
    with pytest.warns(gitcache.GitcacheWarning, match=r"input file \(data.txt\) changed while"):
        assert steps.rewrites_its_input(gitcache.File("data.txt")) == "1 2 3\n"
    # No record under the old contents' signature: reverting the file runs it again.
    assert not [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]
    pyrepo.write("data.txt", "1 2 3\n")
    with pytest.warns(gitcache.GitcacheWarning):
        steps.rewrites_its_input(gitcache.File("data.txt"))
    assert calls(pyrepo) == ["rewrites_its_input", "rewrites_its_input"]


def test_ignored_parameters_do_not_count_and_declared_env_does(
    pyrepo: PyRepo, steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps.options(1)
    steps.options(1, verbose=True)
    assert calls(pyrepo) == ["options"]
    monkeypatch.setenv("GITCACHE_TEST_VAR", "x")
    steps.options(1)
    assert calls(pyrepo) == ["options", "options"]


def test_bad_arguments_are_errors_naming_the_argument(pyrepo: PyRepo, steps) -> None:
    with pytest.raises(ArgumentError, match="step analyze: argument dt: "):
        steps.analyze(gitcache.File("data.txt"), dt="fast")
    with pytest.raises(ArgumentError, match=r"argument data: file .*missing.txt does not exist"):
        steps.analyze(gitcache.File("missing.txt"), dt=1.0)
    with pytest.raises(TypeError):
        steps.analyze(gitcache.File("data.txt"))  # a missing argument, as for any function


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("f = gitcache.step(lambda x: x)", "a lambda cannot be a step"),
        ("@gitcache.step\ndef f(x: int) -> int:\n    yield x", "is a generator function"),
        ("@gitcache.step\nasync def f(x: int) -> int:\n    return x", "is an async function"),
        ("@gitcache.step\ndef f(x) -> int:\n    return x", "parameter 'x' has no type hint"),
        ("@gitcache.step\ndef f(x: int):\n    return x", "the return value has no type hint"),
        (
            "@gitcache.step(ignore=['y'])\ndef f(x: int) -> int:\n    return x",
            "names 'y', which is not a parameter",
        ),
        (
            "@gitcache.step(name='a b')\ndef f(x: int) -> int:\n    return x",
            "invalid step name 'a b': use only letters",
        ),
        (
            "@gitcache.step(env=['OMP_NUM_THREADS '])\ndef f(x: int) -> int:\n    return x",
            "'OMP_NUM_THREADS ' is not an environment variable name",
        ),
    ],
)
def test_what_cannot_be_a_step_is_refused_at_decoration(
    pyrepo: PyRepo, source: str, message: str
) -> None:
    with pytest.raises(StepDefinitionError, match=message):
        pyrepo.module("bad.py", "import gitcache\n" + source + "\n")


def test_a_script_step_works_from_main_and_a_record_is_shared_with_importers(
    pyrepo: PyRepo,
) -> None:
    pyrepo.write(
        "script.py",
        """
        import gitcache

        @gitcache.step
        def square(x: int) -> int:
            print("computing", x)
            return x * x

        if __name__ == "__main__":
            print("result", square(7))
        """,
    )
    pyrepo.commit("script")
    assert "computing 7" in pyrepo.run_file("script.py").stdout
    again = pyrepo.run_file("script.py").stdout
    assert "result 49" in again and "computing" not in again
    # Imported as a module (as a task worker would): the same code, the same record.
    done = pyrepo.python("import script; print(script.square(7))")
    assert done.stdout == "49\n"


def test_a_notebook_cell_step_reads_its_source_from_linecache(pyrepo: PyRepo) -> None:
    """IPython registers each cell's source in linecache under a name no file has."""
    import linecache

    def cell(number: int, source: str) -> dict[str, object]:
        filename = f"/tmp/ipykernel_12345/{number}0000{number}.py"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace: dict[str, object] = {"__name__": "__main__"}
        exec(compile(source, filename, "exec"), namespace)
        return namespace

    helper = "def helper(x: int) -> int:\n    return x + 1\n"
    body = "import gitcache\n\n@gitcache.step\ndef f(x: int) -> int:\n    return helper(x) * 2\n"
    first = cell(1, helper + body)
    f = first["f"]
    assert f(3) == 8  # type: ignore[operator]
    code = f.signer.code(pyrepo.root)  # type: ignore[attr-defined]
    assert set(code.references) == {"<interactive>:helper"}
    # The same cells run again in a new kernel: other file names, the same signature.
    second = cell(2, helper + body)
    sig = lambda g: g.task(3).signature  # noqa: E731
    assert sig(second["f"]) == sig(f)
    # A changed helper cell changes it.
    third = cell(3, helper.replace("+ 1", "+ 2") + body)
    assert sig(third["f"]) != sig(f)
    # A task file could not import a cell's step: saving one says so.
    with pytest.raises(ArgumentError, match="step f is defined in a notebook cell"):
        f.task(3).save(pyrepo.root / "tasks")  # type: ignore[attr-defined]


def test_a_pickled_result_is_loaded_only_from_this_clone_or_when_trusted(
    pyrepo: PyRepo, make
) -> None:
    source = """
import gitcache

class Opaque:
    def __init__(self, v):
        self.v = v

@gitcache.step(allow_pickle=True)
def opaque(n: int) -> Opaque:
    with open("calls.txt", "a") as f:
        f.write("opaque\\n")
    return Opaque(n)
"""
    pyrepo.write(".gitignore", "__pycache__/\ncalls.txt\n")
    pyrepo.write("pick.py", source)
    pyrepo.commit("pickle step")
    assert pyrepo.python("import pick; print(pick.opaque(2).v)").stdout == "2\n"
    assert pyrepo.python("import pick; print(pick.opaque(2).v)").stdout == "2\n"
    assert calls(pyrepo) == ["opaque"]
    commit = pyrepo.refs()["refs/gitcache/step/opaque"]
    assert "result.pickle" in pyrepo.git("ls-tree", "--name-only", commit)
    # A clone that fetched the record does not unpickle it: it warns and runs.
    clone = make({}, commit=False, name="clone")
    clone.git("pull", "-q", str(pyrepo.root), "main")
    clone.git("fetch", "-q", str(pyrepo.root), "refs/gitcache/*:refs/gitcache/*")
    clone_py = PyRepo(clone.root)
    done = clone_py.python(
        "import warnings, pick; warnings.simplefilter('always'); print(pick.opaque(2).v)"
    )
    assert done.stdout == "2\n"
    assert "holds a pickled result that this clone did not write" in done.stderr
    assert calls(clone_py) == ["opaque"]
    # Trusted explicitly: loaded.
    other = make({}, commit=False, name="other")
    other.git("pull", "-q", str(pyrepo.root), "main")
    other.git("fetch", "-q", str(pyrepo.root), "refs/gitcache/*:refs/gitcache/*")
    done = PyRepo(other.root).python(
        f"import gitcache, pick; gitcache.trust_record({commit!r}); print(pick.opaque(2).v)"
    )
    assert done.stdout == "2\n" and calls(PyRepo(other.root)) == []


def test_a_tampered_result_is_validated_against_the_return_type(pyrepo: PyRepo, steps) -> None:
    steps.analyze(gitcache.File("data.txt"), dt=0.5)
    commit = pyrepo.refs()["refs/gitcache/step/analyze"]
    # Build a record commit like the real one but with result.json of another type.
    tree = pyrepo.git("ls-tree", commit)
    bad_blob = pyrepo.git("hash-object", "-w", "--stdin", input='{"mean": "lots"}').strip()
    lines = [
        line.replace(line.split()[2], bad_blob) if line.endswith("\tresult.json") else line
        for line in tree.splitlines()
    ]
    new_tree = pyrepo.git("mktree", input="\n".join(lines) + "\n").strip()
    forged = pyrepo.git("commit-tree", new_tree, "-p", pyrepo.head(), "-m", "forged").strip()
    sig_ref = next(r for r, c in pyrepo.refs().items() if "/sig/" in r and c == commit)
    pyrepo.git("update-ref", sig_ref, forged)
    done = pyrepo.python(
        "import warnings, gitcache, steps; warnings.simplefilter('always'); "
        "print(steps.analyze(gitcache.File('data.txt'), dt=0.5))"
    )
    assert done.stdout.splitlines()[-1] == "mean=1.0 n=10"
    assert "does not match its return type" in done.stderr
    assert calls(pyrepo) == ["analyze", "analyze"]
    assert pyrepo.refs()[sig_ref] not in (forged, commit)  # replaced by the new record


def test_dirty_worktree_runs_are_marked_and_keep_a_snapshot(pyrepo: PyRepo, steps) -> None:
    pyrepo.write("steps.py", pyrepo.read("steps.py") + "\n# edited\n")
    steps.analyze(gitcache.File("data.txt"), dt=0.5)
    commit = pyrepo.refs()["refs/gitcache/step/analyze"]
    record = json.loads(pyrepo.git("show", f"{commit}:record.json"))
    assert record["dirty"] is True and record["dirty_files"] == ["steps.py"]
    assert "# edited" in pyrepo.git("show", f"{commit}:worktree/steps.py")


def test_import_gitcache_stays_cheap() -> None:
    import subprocess

    from tests.helpers import gitcache_env

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gitcache; "
            "print(sorted(m for m in sys.modules if m.startswith(('gitcache.', 'pydantic', 'numpy'))))",
        ],
        capture_output=True,
        text=True,
        env=gitcache_env(),
        check=True,
    )
    assert done.stdout.strip() == "[]"
    # The Python API itself does not import numpy or pandas until a value needs them.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gitcache\n@gitcache.step\ndef f(x: int) -> int:\n    return x\n"
            "print('numpy' in sys.modules, 'pandas' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        env=gitcache_env(),
        check=True,
    )
    assert done.stdout.strip() == "False False"


def test_warnings_are_gitcache_warnings() -> None:
    assert issubclass(GitcacheWarning, UserWarning)
    assert gitcache.File("a") == gitcache.File(Path("a"))


IPYTHON_SESSION = r"""
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
cells = [
    "import gitcache\n\ndef helper(x: int) -> int:\n    return x + OFFSET\n\nOFFSET = 1",
    "@gitcache.step\ndef f(x: int) -> int:\n    print('running f', x)\n    return helper(x) * 2",
    "print('result', f(3))",
    "print('result', f(3))",
    "OFFSET = 2",
    "print('result', f(3))",
]
for cell in cells:
    result = shell.run_cell(cell)
    result.raise_error()
"""


def test_a_step_in_a_real_ipython_kernel(pyrepo: PyRepo) -> None:
    """Cells run by IPython's shell: sources come from its linecache entries."""
    pytest.importorskip("IPython")
    done = pyrepo.python(IPYTHON_SESSION)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("running", "result"))]
    assert lines == [
        "running f 3",
        "result 8",
        "result 8",  # from memory
        "running f 3",  # the constant the helper uses changed
        "result 10",
    ]
    # A new kernel, the same cells: loaded from git, nothing runs.
    again = pyrepo.python(IPYTHON_SESSION)
    assert "running" not in again.stdout
    assert len([r for r in pyrepo.refs() if "/sig/" in r]) == 2

"""Several processes calling steps at once: one run per signature, no record lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import gitcache_env
from tests.python.conftest import PyRepo

SLOW = """
import os
import time

import gitcache


@gitcache.step
def slow(x: int) -> int:
    with open("runs.txt", "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(0.5)
    return x * 10


@gitcache.step
def quick(x: int) -> int:
    return x + 1


def call_quick(x: int) -> int:
    return quick(x)
"""


@pytest.mark.slow
def test_eight_processes_with_the_same_arguments_run_the_body_once(pyrepo: PyRepo) -> None:
    pyrepo.write(".gitignore", "__pycache__/\nruns.txt\n")
    pyrepo.write("par.py", SLOW)
    pyrepo.commit("steps")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "import par; print(par.slow(4))"],
            cwd=pyrepo.root,
            env=gitcache_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _out, err in outputs]
    assert [out for out, _err in outputs] == ["40\n"] * 8
    assert len(pyrepo.read("runs.txt").split()) == 1
    assert len([r for r in pyrepo.refs() if "/sig/" in r]) == 1


@pytest.mark.slow
def test_a_process_pool_over_100_arguments_writes_100_records(pyrepo: PyRepo) -> None:
    pyrepo.write("par.py", SLOW)
    pyrepo.commit("steps")
    done = pyrepo.python(
        """
        from concurrent.futures import ProcessPoolExecutor
        import par

        if __name__ == "__main__":
            with ProcessPoolExecutor(4) as pool:
                print(sum(pool.map(par.call_quick, range(100))))
        """,
        timeout=300,
    )
    assert done.stdout == f"{sum(range(1, 101))}\n"
    sig_refs = [r for r in pyrepo.refs() if "/sig/" in r]
    assert len(sig_refs) == 100
    assert pyrepo.process("log", "quick", "--json").returncode == 0
    pyrepo.git("fsck", "--strict")


def test_a_forked_worker_opens_its_own_repository(pyrepo: PyRepo) -> None:
    """The parent called steps (its session is open) before the pool forked."""
    pyrepo.write("par.py", SLOW)
    pyrepo.commit("steps")
    done = pyrepo.python(
        """
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        import par
        from gitcache.python import session

        def inherited(_):
            return len(session._SESSIONS)

        if __name__ == "__main__":
            par.quick(1000)
            assert len(session._SESSIONS) == 1
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(1, mp_context=fork) as pool:
                print(pool.submit(inherited, 0).result())
            with ProcessPoolExecutor(2, mp_context=fork) as pool:
                print(sum(pool.map(par.call_quick, range(10))))
        """
    )
    assert done.stdout.splitlines() == ["0", str(sum(range(1, 11)))]
    assert len([r for r in pyrepo.refs() if "/sig/" in r]) == 11


def test_process_pool_workers_leave_the_code_form_cache_filled(pyrepo: PyRepo) -> None:
    """A forked worker ends with os._exit, so atexit never saves what it learned: the
    normalized forms of the step's file are written as soon as its code is computed."""
    pyrepo.write("par.py", SLOW)
    pyrepo.commit("steps")
    forms = pyrepo.root / ".git" / "gitcache" / "python-code-v1"
    done = pyrepo.python(
        """
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        import par

        if __name__ == "__main__":
            fork = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(2, mp_context=fork) as pool:
                print(sum(pool.map(par.call_quick, range(6))))
        """
    )
    assert done.stdout == f"{sum(range(1, 7))}\n"
    saved = list(forms.glob("*/*.json"))
    assert len(saved) == 1  # par.py's text, once
    assert '"f:' in saved[0].read_text()  # the forms of its functions
    # A new process finds the forms there: it parses nothing.
    check = pyrepo.python(
        """
        import ast
        import par
        calls = []
        real = ast.parse
        ast.parse = lambda *a, **k: calls.append(1) or real(*a, **k)
        par.quick(1)
        print(len(calls))
        """
    )
    assert check.stdout == "0\n"


def test_a_step_function_running_gitcache_gc_fails_it_at_once_instead_of_hanging(
    pyrepo: PyRepo,
) -> None:
    """The call holds the objects lock (shared) while its function runs: a `gitcache gc
    --prune` the function starts would wait for it for ever; it fails at once instead."""
    pyrepo.write(
        "nested.py",
        textwrap.dedent(
            f"""
            import subprocess, sys
            import gitcache

            @gitcache.step
            def prunes(n: int) -> str:
                done = subprocess.run(
                    [{sys.executable!r}, "-m", "gitcache", "gc", "--prune", "--keep", "1"],
                    capture_output=True, text=True, timeout=60,
                )
                return f"{{done.returncode}} {{done.stderr.strip()}}"

            print(prunes(1))
            """
        ),
    )
    pyrepo.commit("nested")
    try:
        done = pyrepo.run_file("nested.py")
    except subprocess.TimeoutExpired:
        pytest.fail("gitcache gc inside a Python step hung")
    assert done.stdout.startswith("1 gitcache: error: cannot drop records while a step runs: ")
    assert "objects.lock is held by the gitcache (pid " in done.stdout


WRITER = """
import os
import sys
import time

import gitcache


@gitcache.step(outputs=["out.txt"])
def write(n: int) -> int:
    with open("out.txt", "w") as handle:
        handle.write(f"start {n}\\n")
    open(f"started-{n}", "w").close()
    while not os.path.exists(f"go-{n}"):
        time.sleep(0.02)
    with open("out.txt", "a") as handle:
        handle.write(f"{n}\\n")
    return n


if __name__ == "__main__":
    write(int(sys.argv[1]))
"""


def test_two_processes_writing_one_output_record_each_its_own(pyrepo: PyRepo) -> None:
    """The second call (other arguments, the same declared output) waits for the first
    to be recorded: before, each recorded what the other wrote into out.txt."""
    import json
    import time

    from tests.helpers import wait_for

    pyrepo.write("writer.py", WRITER)

    def spawn(n: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "writer.py", str(n)],
            cwd=pyrepo.root,
            env=gitcache_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    first = spawn(1)
    wait_for(pyrepo.root / "started-1")
    second = spawn(2)
    time.sleep(1.0)
    assert second.poll() is None and not (pyrepo.root / "started-2").exists()
    (pyrepo.root / "go-1").touch()
    assert first.wait(60) == 0
    wait_for(pyrepo.root / "started-2")
    (pyrepo.root / "go-2").touch()
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "waiting for lock on" in err
    found = {}
    for name in pyrepo.refs("refs/gitcache/sig/"):
        record = json.loads(pyrepo.git("show", f"{name}:record.json"))
        found[record["python"]["arguments"]["n"]] = pyrepo.git("show", f"{name}:outputs/out.txt")
    assert found == {1: "start 1\n1\n", 2: "start 2\n2\n"}

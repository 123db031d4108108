"""The no-op fast path: a run with nothing to do only stats files and writes nothing.

Correctness guards for what docs/benchmarks.md measures, not timings.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gitcache import statcache
from gitcache.cli.main import _quick_import
from gitcache.engine import Engine, RunOptions, RunSummary, StepResult
from gitcache.gitrepo import GitRepo
from gitcache.project import Project
from gitcache.statcache import CACHE_FILE
from tests.helpers import Repo, gitcache_env

STEPS = 5


def chain_toml(steps: int) -> str:
    parts = [
        '[steps.s0]\ninputs = ["data/in.txt"]\noutputs = ["out/s0.txt"]\n'
        'run = "cat {inputs} > {outputs}"\n'
    ]
    for i in range(1, steps):
        parts.append(
            f'[steps.s{i}]\ninputs = ["out/s{i - 1}.txt"]\noutputs = ["out/s{i}.txt"]\n'
            f'run = "cat {{inputs}} > {{outputs}} && echo line {i} >> {{outputs}}"\n'
        )
    return "\n".join(parts)


class Silent:
    def step_started(self, step: str, action: str) -> None:
        pass

    def step_finished(self, result: StepResult) -> None:
        pass

    def output(self, step: str, stream: str, data: bytes) -> None:
        pass

    def warning(self, message: str) -> None:
        raise AssertionError(f"unexpected warning: {message}")


def run_once(root: Path) -> tuple[RunSummary, int]:
    """One `gitcache run` through the API, in a fresh Project as a new process would."""
    project = Project.open(root)
    summary = Engine(project, RunOptions(), Silent()).run([])
    project.save()
    return summary, project.worktree.cache.hashed


def outcomes(summary: RunSummary) -> list[str]:
    return [r.outcome for r in summary.results]


def ref_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file that holds a ref of ours, with (inode, mtime_ns): a rewrite changes them."""
    git_dir = root / ".git"
    found = {
        str(p.relative_to(git_dir)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (git_dir / "refs" / "gitcache").rglob("*")
        if p.is_file()
    }
    packed = git_dir / "packed-refs"
    if packed.exists():
        found["packed-refs"] = (packed.stat().st_ino, packed.stat().st_mtime_ns)
    return found


@pytest.fixture
def ran(make: Callable[..., Repo]) -> Repo:
    """A chain of STEPS steps, run once and then once more (the first no-op)."""
    repo = make(
        {"gitcache.toml": chain_toml(STEPS), "data/in.txt": "input\n", ".gitignore": "out/\n"}
    )
    summary, _hashed = run_once(repo.root)
    assert outcomes(summary) == ["ran"] * STEPS
    # Outputs written in the same clock tick as the stat cache are racily clean and are
    # hashed once more by the first no-op; from the second no-op on, nothing is read.
    summary, _hashed = run_once(repo.root)
    assert outcomes(summary) == ["skipped"] * STEPS
    return repo


def test_second_noop_hashes_no_file_and_writes_no_ref(
    ran: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_listing(self: GitRepo, prefix: str) -> Iterator[tuple[str, str]]:
        raise AssertionError(f"a no-op listed refs under {prefix}")

    # One ref read per record, never a listing: its cost grows with every record kept.
    monkeypatch.setattr(GitRepo, "refs", no_listing)
    refs, files = ran.refs(), ref_files(ran.root)
    cache = ran.root / ".git" / "gitcache" / CACHE_FILE
    cache_stat = cache.stat()
    summary, hashed = run_once(ran.root)
    assert outcomes(summary) == ["skipped"] * STEPS
    assert hashed == 0
    assert ran.refs() == refs
    assert ref_files(ran.root) == files
    # Nothing learned, so the stat cache is not rewritten either.
    assert (cache.stat().st_ino, cache.stat().st_mtime_ns) == (
        cache_stat.st_ino,
        cache_stat.st_mtime_ns,
    )


def test_a_change_behind_the_stat_cache_is_still_seen(ran: Repo) -> None:
    """Same size, mtime put back: the ctime still moves, so the fast path re-hashes the file."""
    path = ran.root / "data" / "in.txt"
    before = path.stat()
    path.write_text("INPUT\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    summary, hashed = run_once(ran.root)
    assert hashed >= 1
    assert outcomes(summary) == ["ran"] * STEPS
    assert ran.read(f"out/s{STEPS - 1}.txt").startswith("INPUT\n")


def test_quick_import_puts_the_collector_back() -> None:
    assert gc.isenabled()
    with _quick_import():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _quick_import():
            pass
        assert not gc.isenabled()  # it was off before; it stays off
    finally:
        gc.enable()


_PROBE = """
import json, sys
from gitcache.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
ours = sorted(m for m in sys.modules if m.startswith(("gitcache", "pydantic")))
print(json.dumps({"code": code, "modules": ours}))
"""


def _probe(root: Path, *args: str) -> tuple[int, list[str]]:
    """(exit code, the gitcache and pydantic modules loaded) of one command, run in a
    process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=root,
        env=gitcache_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.splitlines()[-1])
    return probe["code"], probe["modules"]


def test_run_imports_only_its_command(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > {outputs}"\n'})
    code, modules = _probe(repo.root, "run", "-q")
    assert code == 0 and "gitcache.cli.run" in modules
    others = ("gitcache.cli.demo", "gitcache.cli.status", "gitcache.cli.records")
    # A run that shares nothing loads no transport, and no hooks under the default policy.
    for other in (*others, "gitcache.cli.sharing", "gitcache.sharing", "gitcache.hooks"):
        assert other not in modules


def test_the_usual_commands_never_import_pydantic(make: Callable[..., Repo]) -> None:
    """Its import and model building were ~40 % of a command's start-up: the records
    and the workflow gitcache writes are read and written without it (record.py,
    workflow.py), a first run, a no-op, a restore, status, log and show alike."""
    toml = (
        "[params]\nn = 3\n\n"
        '[steps.a]\ninputs = ["in.txt"]\noutputs = ["out/a.txt", "out/dir"]\n'
        'env = ["HOME"]\nrun = "mkdir -p out/dir && cat {inputs} > out/a.txt && '
        'echo {n} > out/dir/n && ln -sf n out/dir/link"\n\n'
        '[steps.b]\nmatrix = { x = [1, 2] }\noutputs = ["out/b{x}.txt"]\n'
        'run = "echo {x} > {outputs}"\n\n'
        '[hooks]\nrewrite = "protect"\n\n[restore]\nmax_files = 10\n'
    )
    repo = make({"gitcache.toml": toml, "in.txt": "in\n", ".gitignore": "/out/\n"})
    for args in (
        ("run",),  # the first run: records written
        ("run",),  # the no-op
        ("status",),
        ("log", "a"),
        ("show", "a"),
    ):
        code, modules = _probe(repo.root, *args)
        assert code == 0, args
        assert not [m for m in modules if m.startswith("pydantic")], args
    shutil.rmtree(repo.root / "out")
    code, modules = _probe(repo.root, "run")  # restored from the records
    assert code == 0 and repo.read("out/dir/n") == "3\n"
    assert not [m for m in modules if m.startswith("pydantic")]


def test_recording_reads_each_output_once(
    make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing an output writes its blob; the blob id comes from that, not from hashing too."""
    repo = make({"gitcache.toml": chain_toml(STEPS), "data/in.txt": "x\n"})
    # A step that starts within the file system's clock tick in which the step before
    # wrote its input hashes that input again after its command (racily clean, by
    # design): with steps a few milliseconds apart that depends on timing. Here the
    # clock reads as later than every file, so only the stat cache's answers count.
    monkeypatch.setattr(statcache, "filesystem_now", lambda _directory: 2**62)
    summary, hashed = run_once(repo.root)
    assert outcomes(summary) == ["ran"] * STEPS
    # Only the first step's committed input is hashed; each step's input is the output the
    # step before just stored, whose blob id the stat cache already holds.
    assert hashed == 1

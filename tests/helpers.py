"""Scenario helpers: real repositories, the real git, gitcache in-process or as a process."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from gitcache.cli.main import main
from gitcache.journal import JOURNAL_DIR

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def git(root: Path, *args: str, check: bool = True, input: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, input=input
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def gitcache_env() -> dict[str, str]:
    """Environment for a gitcache subprocess that imports this checkout."""
    path = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


SPAWNED: list[subprocess.Popen[str]] = []  # Repo.spawn's processes, for clean-up


def stop_spawned() -> None:
    """SIGTERM each spawned gitcache still running (it stops its step's command too),
    then SIGKILL what is left after a few seconds."""
    for proc in SPAWNED:
        if proc.poll() is None:
            proc.terminate()
    for proc in SPAWNED:
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    SPAWNED.clear()


@dataclass
class Repo:
    root: Path

    def write(self, path: str, text: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def read(self, path: str) -> str:
        return (self.root / path).read_text()

    def git(self, *args: str, check: bool = True, input: str | None = None) -> str:
        return git(self.root, *args, check=check, input=input)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def blob(self, path: str) -> str:
        return self.git("hash-object", "--no-filters", path).strip()

    def refs(self, prefix: str = "refs/gitcache/") -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines())

    def run(self, *args: str) -> Result:
        """gitcache in this process (fast); exceptions escape only as exit codes."""
        return CliRunner().invoke(main, ["-C", str(self.root), *args], catch_exceptions=False)

    def spawn(
        self, *args: str, script: str | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        """gitcache in a process of its own (`script`: Python code that runs it, given
        `args`); stopped at the test's end if still running (conftest.py), so a failed
        test leaves no step's command waiting forever."""
        command = ["-m", "gitcache"] if script is None else ["-c", script]
        proc: subprocess.Popen[str] = subprocess.Popen(  # type: ignore[call-overload]
            [sys.executable, *command, *args],
            cwd=self.root,
            env=gitcache_env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kwargs,
        )
        SPAWNED.append(proc)
        return proc

    def process(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gitcache", *args],
            cwd=self.root,
            env=gitcache_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def make_repo(root: Path, files: dict[str, str], commit: bool = True) -> Repo:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    repo = Repo(root)
    for path, text in files.items():
        repo.write(path, text)
    if commit:
        repo.commit("initial")
    return repo


def runs(repo: Repo, log: str = "counter.log") -> int:
    """How many times step commands ran: the lines of `log`, which each appends to (the
    log is not an output, so a restore leaves it)."""
    path = repo.root / log
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(path: Path, timeout: float = 60) -> None:
    """Until `path` exists (a marker a step's command or a function writes)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def clone_bundle(bundle: Path, root: Path) -> Repo:
    """A repository cloned from a fixture bundle (branch `main`), with its records."""
    git(root.parent, "clone", "-q", "-b", "main", str(bundle), str(root))
    git(root, "fetch", "-q", str(bundle), "refs/gitcache/*:refs/gitcache/*")
    return Repo(root)


def restore_journals(repo: Repo) -> list[str]:
    """The restore journals in the repository's git dir (journal.py)."""
    with contextlib.suppress(FileNotFoundError):
        return os.listdir(repo.root / ".git" / "gitcache" / JOURNAL_DIR)
    return []


def output_files(repo: Repo) -> dict[str, tuple[bytes, int]]:
    """Every file under out/: its bytes and permission bits."""
    found = {}
    for dirpath, _dirs, names in os.walk(repo.root / "out"):
        for name in names:
            path = Path(dirpath, name)
            mode = stat.S_IMODE(path.lstat().st_mode)
            path.chmod(0o644)  # a mode-000 file is readable by root only
            found[path.relative_to(repo.root).as_posix()] = (path.read_bytes(), mode)
            path.chmod(mode)
    return found


def many_files_project(files: int, dirs: int) -> dict[str, str]:
    """A project whose step `many` writes `files` small files, file i at
    out/d<i % dirs>/f<i:04d>.txt holding `many_file_text(i)`."""
    gen = f"""\
import os
for i in range({files}):
    os.makedirs(f"out/d{{i % {dirs}}}", exist_ok=True)
    with open(f"out/d{{i % {dirs}}}/f{{i:04d}}.txt", "w") as f:
        f.write(f"file {{i}}\\n" * (1 + i % 50))
"""
    toml = '[steps.many]\noutputs = ["out"]\nrun = "python3 gen.py"\n'
    return {"gitcache.toml": toml, "gen.py": gen, ".gitignore": "out/\n"}


def many_file_text(i: int) -> bytes:
    return f"file {i}\n".encode() * (1 + i % 50)


def assert_restored_exactly(repo: Repo, want: dict[str, tuple[bytes, int]]) -> None:
    """out/ holds exactly `want` (bytes and permission bits), no journal and no
    temporary file is left, and the next run is a no-op."""
    assert output_files(repo) == want
    assert restore_journals(repo) == []
    assert not [p for p in output_files(repo) if ".gitcache-tmp-" in p]
    done = repo.process("run")
    assert "up to date" in done.stderr, done.stderr

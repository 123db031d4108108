"""Scenario helpers for the hook tests: a project with a recorded step, real git."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.helpers import PACKAGE_ROOT, Repo


@pytest.fixture
def hooks_import_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """git runs the hooks; they find gitcache the way the test process does."""
    monkeypatch.setenv("PYTHONPATH", str(PACKAGE_ROOT))


TOML = """\
[steps.build]
inputs = ["src/code.txt"]
outputs = ["out/result.txt"]
run = "cat {inputs} > {outputs}"
"""
BLOCK = '\n[hooks]\nrewrite = "block"\n'
FILES = {"gitcache.toml": TOML, ".gitignore": "out/\n", "src/code.txt": "v0\n"}


def project(make: Callable[..., Repo], policy: str = "", **extra: str) -> Repo:
    """A committed project with the hooks installed; nothing recorded yet."""
    toml = TOML + (f'\n[hooks]\nrewrite = "{policy}"\n' if policy else "")
    repo = make({**FILES, "gitcache.toml": toml, **extra})
    result = repo.run("hooks", "install")
    assert result.exit_code == 0, result.output
    return repo


def commit_and_record(repo: Repo, content: str, message: str | None = None) -> str:
    """Change the step's input, commit, run: a commit with one record of its own."""
    repo.write("src/code.txt", content)
    head = repo.commit(message or content.strip())
    result = repo.run("run", "-q")
    assert result.exit_code == 0, result.stderr
    return head


def records_for(repo: Repo, rev: str) -> list[tuple[str, bool]]:
    """(record commit, carried over) that `gitcache log --commit REV --json` lists."""
    import json

    result = repo.run("log", "--commit", rev, "--json")
    assert result.exit_code == 0, result.stderr
    return [(row["record"], row["carried_over"]) for row in json.loads(result.stdout)]


def record_of(repo: Repo, source: str) -> str:
    """The record commit whose parent is `source` (exactly one expected)."""
    found = [
        commit
        for name, commit in repo.refs("refs/gitcache/sig/").items()
        if repo.git("rev-parse", f"{commit}^").strip() == source
    ]
    assert len(found) == 1, found
    return found[0]


def mappings(repo: Repo) -> set[tuple[str, str]]:
    prefix = "refs/gitcache/rewritten/"
    return {tuple(name[len(prefix) :].split("/")) for name in repo.refs(prefix)}  # type: ignore[misc]


def git_status(repo: Repo, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run git, return (exit status, stderr) without raising."""
    done = subprocess.run(
        ["git", *args], cwd=repo.root, capture_output=True, text=True, env=env, check=False
    )
    return done.returncode, done.stderr


def assert_survives_gc(repo: Repo) -> None:
    """Expire every reflog, prune: every record and its source stay; fsck is clean."""
    sig_refs = repo.refs("refs/gitcache/sig/")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    fsck = subprocess.run(
        ["git", "fsck", "--no-progress", "--no-dangling"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert fsck.returncode == 0 and fsck.stdout == "" and fsck.stderr == "", fsck
    assert repo.refs("refs/gitcache/sig/") == sig_refs
    for commit in sig_refs.values():
        repo.git("cat-file", "-e", f"{commit}^{{commit}}")
        repo.git("cat-file", "-e", f"{commit}~1")  # its source commit
    for old, new in mappings(repo):
        repo.git("cat-file", "-e", f"{old}^{{commit}}")
        repo.git("cat-file", "-e", f"{new}^{{commit}}")

"""Fixtures for Python steps: a repository holding modules, imported in this process
or run as scripts in fresh processes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from gitcache.python.session import forget_sessions
from tests.helpers import Repo, gitcache_env


@dataclass
class PyRepo(Repo):
    def module(self, path: str, source: str) -> ModuleType:
        """Write a module and import it under a fresh name (as a new process would)."""
        self.write(path, source)
        name = f"gc_test_{Path(path).stem}_{uuid.uuid4().hex[:8]}"
        spec = importlib.util.spec_from_file_location(name, self.root / path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def python(
        self, script: str, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a script (text) with this checkout's gitcache, in the repository."""
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            cwd=self.root,
            env=gitcache_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"script failed ({done.returncode}):\n{done.stderr}")
        return done

    def run_file(
        self, path: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, path, *args],
            cwd=self.root,
            env=gitcache_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{path} failed ({done.returncode}):\n{done.stderr}")
        return done


@pytest.fixture
def pyrepo(make: Callable[..., Repo], monkeypatch: pytest.MonkeyPatch) -> Iterator[PyRepo]:
    """A committed repository (empty gitcache.toml), the current directory of the test."""
    repo = make({"gitcache.toml": "", ".gitignore": "__pycache__/\n"})
    monkeypatch.chdir(repo.root)
    monkeypatch.syspath_prepend(str(repo.root))
    yield PyRepo(repo.root)
    forget_sessions()

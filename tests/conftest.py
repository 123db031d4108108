"""Every test runs against real git, isolated from the developer's configuration."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Repo, make_repo, stop_spawned

_ISOLATED: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    # A run started in the background without job control (`cmd &` in a script) has
    # SIGINT ignored, and under nohup SIGHUP too; every gitcache a test starts would
    # inherit that and never see the signal the signal tests send. Give them the
    # dispositions a terminal gives (a handler becomes the default in a child).
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # Set once, before pygit2 reads its search paths: libgit2 caches $HOME on first use.
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="gitcache-test-home-"))
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    templates = home / "templates"
    templates.mkdir()
    _ISOLATED.update(
        {
            "HOME": str(home),
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TEMPLATE_DIR": str(templates),
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "GIT_EDITOR": ":",
            "LC_ALL": "C",
        }
    )
    os.environ.update(_ISOLATED)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _spawned_stopped() -> Iterator[None]:
    """No gitcache a test spawned outlives it (a failed test's waiting command)."""
    yield
    stop_spawned()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Repo]]:
    """make({"gitcache.toml": ..., "data/x": ...}) -> a committed repository."""
    count = 0

    def factory(files: dict[str, str], commit: bool = True, name: str | None = None) -> Repo:
        nonlocal count
        count += 1
        return make_repo(tmp_path / (name or f"repo{count}"), files, commit)

    yield factory


CHAIN_TOML = """\
[params]
size = 100
word = "hello"

[steps.make]
outputs = ["out/data.txt"]
run = "printf '%s\\\\n' {word} > {outputs} && seq {size} >> {outputs}"

[steps.count]
inputs = ["out/data.txt"]
outputs = ["out/count.txt"]
run = "wc -l < {inputs} > {outputs}"
"""


@pytest.fixture
def chain(make: Callable[..., Repo]) -> Repo:
    """Two steps, `make` then `count`, committed and never run."""
    return make({"gitcache.toml": CHAIN_TOML, ".gitignore": "out/\n"})

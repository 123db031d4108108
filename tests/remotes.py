"""Remotes for sharing scenarios: bare repositories, a real `git daemon`, forged records."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitcache.gitrepo import MODE_FILE, GitRepo, RefUpdate, TreeEntry
from gitcache.store import sig_ref
from tests.helpers import Repo, git


def bare(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "--bare", "-b", "main")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Daemon:
    base: Path  # repositories served live under it
    url: str  # git://127.0.0.1:<port>/

    def repo(self, name: str) -> tuple[Path, str]:
        """A new bare repository served by the daemon: (its path, its URL)."""
        return bare(self.base / name), self.url + name


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[Daemon]:
    """A `git daemon` that serves and accepts pushes, killed (with its children) on exit."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: teardown reaches every child
    )
    try:
        _wait_listening(port, proc)
        yield Daemon(base, f"git://127.0.0.1:{port}/")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"git daemon exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError("git daemon did not start listening")


def closed_url() -> str:
    """A git:// URL where nothing listens: connection refused at once."""
    return f"git://127.0.0.1:{free_port()}/nothing.git"


def clone(url: str, path: Path) -> Repo:
    git(path.parent, "clone", "-q", "-b", "main", url, str(path))
    return Repo(path)


# -- forged records ------------------------------------------------------------------------


def forge(
    repo: Repo,
    signature: str,
    outputs: dict[str, tuple[bytes, int]],
    record_changes: dict[str, Any] | None = None,
    output_changes: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A record commit made by hand from the legitimate record of `signature`.

    `outputs` (path -> (content, mode)) replace the record's outputs, in record.json and
    in the tree; `record_changes` and `output_changes` (per path) then edit record.json
    freely, so it may say what the tree does not. The sig ref is moved to the forgery.
    record.json is of format 2, which lists the outputs (gitcache still reads it): so it
    can name paths no tree can hold. Format 3's trees: tests/test_record_format3.py.
    """
    gr = GitRepo.discover(repo.root)
    name = sig_ref(signature)
    legit = gr.ref_target(name)
    assert legit is not None
    base = json.loads(gr.read_blob(_entry(gr, legit, "record.json")))
    entries, listed = [], []
    for path, (data, mode) in outputs.items():
        blob = gr.write_blob(data)
        listed.append({"path": path, "blob": blob, "mode": mode, "size": len(data)})
        if _tree_can_hold(path, outputs):
            entries.append(TreeEntry(f"outputs/{path}", blob, mode))
    for item in listed:
        item.update((output_changes or {}).get(item["path"], {}))
    base["outputs"] = listed
    base["format"] = 2
    base.pop("chunked", None)
    base.update(record_changes or {})
    entries.append(TreeEntry("record.json", gr.write_blob(json.dumps(base).encode()), MODE_FILE))
    commit = gr.write_commit(gr.write_tree(entries), gr.commit_parents(legit), "forged\n")
    gr.update_refs([RefUpdate(name, commit)])
    return commit


def _tree_can_hold(path: str, outputs: dict[str, tuple[bytes, int]]) -> bool:
    """libgit2 refuses `..`, `.git` (in any case) and a file that is also a directory."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return False
    if any(p.casefold().rstrip(". ") == ".git" for p in parts):
        return False
    return not any("/".join(parts[:n]) in outputs for n in range(1, len(parts)))


def _entry(gr: GitRepo, commit: str, path: str) -> str:
    entry = gr.tree_entry(gr.commit_tree(commit), path)
    assert entry is not None
    return entry.oid

"""The `git` executable, for network transport only: choosing a remote, fetch, push.

Everything else in gitcache reads and writes git through pygit2 (gitrepo.py). This is
the one module that starts `git`, so the user's ssh config, credential helpers, url
rewrites and every protocol work exactly as they do for `git fetch` and `git push`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import blake3

from gitcache.errors import RemoteError, is_utf8
from gitcache.gitrepo import GitRepo
from gitcache.processes import start_quiet, stopping_children
from gitcache.record import is_oid
from gitcache.stepnames import ref_component_problem

GIT: Final = "git"
ProgressSink = Callable[[bytes], None]  # chunks of git's own progress display (stderr)

# Above this, explicit refspecs go to git in several invocations (ARG_MAX is ~2 MB).
_ARGS_PER_CALL: Final = 2000


@dataclass(frozen=True)
class Remote:
    """A remote as git will use it: a configured name, a URL or a path."""

    name: str
    stage: str  # a ref-safe name for the staging namespace refs/gitcache/remotes/<stage>/


@dataclass(frozen=True)
class PushedRef:
    """One line of `git push --porcelain`: flag, source, destination, summary."""

    flag: str  # '*' new, '=' up to date, ' ' fast-forward, '+' forced, '!' rejected
    src: str
    dst: str
    summary: str

    @property
    def rejected(self) -> bool:
        return self.flag == "!"

    @property
    def diverged(self) -> bool:
        """Rejected because the remote holds another value (not for a server policy)."""
        return self.rejected and (
            "non-fast-forward" in self.summary or "fetch first" in self.summary
        )


def choose_remote(
    repo: GitRepo, name: str | None, for_push: bool = False, cwd: Path | None = None
) -> Remote:
    """The remote named, or the one git would choose (upstream of the branch, else origin).

    A relative path is taken from `cwd` (default: the process's), as git would, even
    though git runs at the repository root.
    """
    if name is None:
        name = _default_name(repo, for_push)
    if not name or name.startswith("-"):
        raise RemoteError(f"invalid remote name {name!r}")
    # A name that is not UTF-8 (a path of such bytes) names no configured remote.
    configured = is_utf8(name) and repo.config_value(f"remote.{name}.url") is not None
    local = (cwd or Path.cwd()) / name
    if not configured and "://" not in name and local.exists():
        name = str(local.resolve())
    if not configured and not _looks_like_location(name):
        raise RemoteError(
            f"no remote named {name!r} in {repo.root}",
            hint="add one with `git remote add NAME URL`, or give a URL or path",
        )
    return Remote(name, _stage_name(name))


def _default_name(repo: GitRepo, for_push: bool) -> str:
    branch = repo.head_branch()
    keys = []
    if for_push:  # git push: branch.<b>.pushRemote, remote.pushDefault, then as fetch
        keys += [f"branch.{branch}.pushRemote"] if branch else []
        keys.append("remote.pushDefault")
    keys += [f"branch.{branch}.remote"] if branch else []
    for key in keys:
        value = repo.config_value(key)
        if value and value != ".":
            return value
    return "origin"


def _looks_like_location(name: str) -> bool:
    # As git decides between a remote name and a URL or path: URLs and scp-like
    # addresses hold ':' and paths hold '/' (existing local paths are made absolute).
    return ":" in name or "/" in name


def _stage_name(name: str) -> str:
    if ref_component_problem(name) is None:
        return name
    return "url-" + blake3.blake3(os.fsencode(name)).hexdigest()[:16]


def list_refs(repo: GitRepo, remote: Remote, prefix: str) -> list[tuple[str, str]]:
    """(name, object id) of every ref the remote advertises under `prefix` (`git ls-remote`)."""
    args = ["ls-remote", "--refs", "--", remote.name, prefix + "*"]
    status, out, err = _run(repo.root, args, None)
    if status != 0:
        raise RemoteError(f"cannot fetch from {remote.name!r}: {_reason(err)}")
    found = []
    for line in out.decode("utf-8", "replace").splitlines():
        oid, _tab, name = line.partition("\t")
        # ls-remote's patterns also match the tail of a longer name: keep the prefix only.
        if name.startswith(prefix) and is_oid(oid):
            found.append((name, oid))
    return found


def fetch(
    repo: GitRepo,
    remote: Remote,
    refspecs: Sequence[str],
    progress: ProgressSink | None,
) -> None:
    """`git fetch` of exactly these refspecs: no tags, no FETCH_HEAD, no tracking refs."""
    # Exactly these refs: whatever the user's fetch config says about tags,
    # FETCH_HEAD, remote-tracking branches or submodules. The refspecs go on stdin:
    # their number (negative refspecs included) is not bounded by the argument list.
    args = ["fetch", "--no-tags", "--no-write-fetch-head", "--refmap=", "--no-recurse-submodules"]
    args += ["--progress"] if progress else ["--quiet"]
    spec = "".join(f"{line}\n" for line in refspecs).encode()
    status, _out, err = _run(repo.root, [*args, "--stdin", "--", remote.name], progress, spec)
    if status != 0:
        raise RemoteError(f"cannot fetch from {remote.name!r}: {_reason(err)}")


def push(
    repo: GitRepo, remote: Remote, refspecs: Sequence[str], progress: ProgressSink | None
) -> list[PushedRef]:
    """`git push --porcelain`; returns every ref's outcome (rejections are not raised)."""
    results: list[PushedRef] = []
    for start in range(0, max(len(refspecs), 1), _ARGS_PER_CALL):
        chunk = refspecs[start : start + _ARGS_PER_CALL]
        args = ["push", "--porcelain", "--no-follow-tags", "--no-recurse-submodules"]
        args.append("--progress" if progress else "--no-progress")
        status, out, err = _run(repo.root, [*args, "--", remote.name, *chunk], progress)
        lines = _porcelain(out)
        # git exits 1 when a ref is rejected; a transport failure prints no ref lines.
        if status != 0 and not any(line.rejected for line in lines):
            raise RemoteError(f"cannot push to {remote.name!r}: {_reason(err)}")
        results += lines
    return results


def _porcelain(out: bytes) -> list[PushedRef]:
    found = []
    for raw in out.decode("utf-8", "replace").splitlines():
        if len(raw) > 2 and raw[1] == "\t":
            refs, _tab, summary = raw[2:].partition("\t")
            src, _colon, dst = refs.partition(":")
            found.append(PushedRef(raw[0], src, dst, summary))
    return found


def _reason(err: bytes) -> str:
    """The line of git's stderr that says what went wrong."""
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else "git failed without a message"


def _run(
    root: Path, args: list[str], progress: ProgressSink | None, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """Run git; its stderr goes to `progress` as it comes (and is kept for messages).

    git stays in gitcache's process group (Ctrl-C reaches it from the terminal, and
    ssh or a credential helper can still ask on the terminal); SIGTERM and SIGHUP,
    which reach gitcache alone, are passed on to it (then SIGKILL), and so is an error
    leaving this function meanwhile (processes.stopping_children).
    """
    with stopping_children() as children:
        try:
            proc = subprocess.Popen(
                [GIT, *args],
                cwd=root,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise RemoteError(f"cannot start {GIT}: {exc}", hint="is git installed?") from None
        children.add(proc)
        return _talk(proc, progress, stdin)


def _talk(
    proc: subprocess.Popen[bytes], progress: ProgressSink | None, stdin: bytes | None
) -> tuple[int, bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    err: list[bytes] = []
    pump = threading.Thread(target=_pump, args=(proc.stderr, err, progress), daemon=True)
    start_quiet(pump)
    # On an exception (a signal), stopping_children stops git; the pump then ends.
    if stdin is not None and proc.stdin is not None:
        # git fetch --stdin reads all of it before it starts: no deadlock with stdout.
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    out = proc.stdout.read()
    status = proc.wait()
    pump.join()
    return status, out, b"".join(err)


def _pump(stream: IO[bytes], kept: list[bytes], progress: ProgressSink | None) -> None:
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        kept.append(chunk)
        if progress is not None:
            progress(chunk)

"""Push and fetch of many records through `git daemon`: gitcache beside plain git.

    python tests/benchmarks/bench_remote.py [--records 1000] [--max-kb 1024]

Records are written directly through the store (RecordStore.write with NewRecord),
one output each, sizes log-uniform from 1 KB to --max-kb, random bytes (git cannot
compress them, as with most binary artifacts). Then, each through a fresh bare
repository served by `git daemon` on 127.0.0.1:

- push:  `gitcache push URL`  beside  `git push --mirror URL`  (the same objects)
- fetch: `gitcache fetch URL` beside  `git fetch URL 'refs/gitcache/*:refs/gitcache/*'`
- a `gitcache run --remote` miss look-up: `sharing.fetch_signature` for one signature
  of the 1,000 (one `git fetch`, one connection), beside the same ref by plain git.

The commands run as processes (Python start-up included). Goal: within 1.3x of git.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gitcache import sharing  # noqa: E402
from gitcache.gitrepo import MODE_FILE, GitRepo  # noqa: E402
from gitcache.record import Components, OutputFile, Record  # noqa: E402
from gitcache.remote import choose_remote  # noqa: E402
from gitcache.signature import signature_of  # noqa: E402
from gitcache.store import NewRecord, RecordStore, sig_ref  # noqa: E402
from tests.remotes import git_daemon  # noqa: E402

ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


GLOB = "refs/gitcache/*:refs/gitcache/*"


def sh(cwd: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def populate(root: Path, count: int, max_kb: int) -> tuple[list[str], int]:
    """A repository with `count` records written through the store; returns signatures, bytes."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    (root / "README").write_text("bench\n")
    repo = GitRepo.discover(root)
    head = repo.commit_all("bench: source")
    store = RecordStore(repo)
    rng = random.Random(5)
    logs_dir = Path(tempfile.mkdtemp())
    logs = {name: logs_dir / name for name in ("stdout", "stderr")}
    for path in logs.values():
        path.write_bytes(b"")
    signatures, total = [], 0
    for n in range(count):
        size = int(math.exp(rng.uniform(math.log(1024), math.log(max_kb * 1024))))
        blob = repo.write_blob(rng.randbytes(size))
        total += size
        path = f"out/{n}.bin"
        components = Components(
            format=1,
            kind="shell",
            code=f"make {n}",
            shell="sh",
            params={"n": n},
            inputs={},
            outputs=[path],
            env={},
        )
        record = Record(
            step=f"step{n % 50}",
            signature=signature_of(components),
            components=components,
            command=f"make {n}",
            outputs=[OutputFile(path=path, blob=blob, mode=MODE_FILE, size=size)],
            source_commit=head,
            dirty=False,
            started_at="2026-01-01T00:00:00+00:00",
            duration=1.0,
            exit_status=0,
            host="bench",
            gitcache_version="bench",
        )
        store.write(NewRecord(record, logs), head)
        signatures.append(record.signature)
    return signatures, total


def fresh_clone(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True, env=ENV)
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--max-kb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gitcache-bench-remote-"))
    gitcache = [sys.executable, "-m", "gitcache"]

    start = time.perf_counter()
    signatures, total = populate(work / "a", args.records, args.max_kb)
    print(
        f"{args.records} records, {total / 2**20:.1f} MiB of outputs, "
        f"written in {time.perf_counter() - start:.1f} s"
    )
    timings: dict[str, list[float]] = {
        k: []
        for k in (
            "gc push",
            "git push",
            "gc fetch",
            "git fetch",
            "gc miss",
            "git miss",
            "in-process fetch",
            "union",
            "start-up",
        )
    }
    with git_daemon(work / "served") as daemon:
        for r in range(args.rounds):
            _, url1 = daemon.repo(f"gc{r}.git")
            _, url2 = daemon.repo(f"git{r}.git")
            # Alternate which goes first so the page cache favours neither.
            order = [("gc push", url1), ("git push", url2)][:: 1 if r % 2 == 0 else -1]
            for name, url in order:
                if name == "gc push":
                    timings[name].append(sh(work / "a", *gitcache, "push", url))
                else:
                    timings[name].append(sh(work / "a", "git", "push", "-q", "--mirror", url))
            b1, b2 = fresh_clone(work / f"b{r}"), fresh_clone(work / f"c{r}")
            fetches = [
                ("gc fetch", b1, [*gitcache, "fetch", url1]),
                ("git fetch", b2, ["git", "fetch", "-q", "--no-tags", url1, GLOB]),
            ]
            for name, cwd, argv in fetches[:: 1 if r % 2 == 0 else -1]:
                timings[name].append(sh(cwd, *argv))
            assert len(list(GitRepo.discover(b1).refs("refs/gitcache/sig/"))) == args.records

            # A miss look-up: one signature's ref, into a repository without records.
            b3 = fresh_clone(work / f"d{r}")
            repo = GitRepo.discover(b3)
            store = RecordStore(repo)
            remote = choose_remote(repo, url1)
            wanted = signatures[r * 7 % len(signatures)]
            start = time.perf_counter()
            report = sharing.fetch_signature(store, remote, wanted)
            timings["gc miss"].append(time.perf_counter() - start)
            assert report.added == [wanted]
            ref = sig_ref(wanted)
            b4 = fresh_clone(work / f"e{r}")
            timings["git miss"].append(sh(b4, "git", "fetch", "-q", url1, f"{ref}:{ref}"))

            # Where gitcache's time beyond git's goes: interpreter start-up, the union.
            timings["start-up"].append(sh(b4, *gitcache, "--version"))
            repo = GitRepo.discover(fresh_clone(work / f"f{r}"))
            remote = choose_remote(repo, url1)
            start = time.perf_counter()
            sharing.fetch(RecordStore(repo), remote)
            timings["in-process fetch"].append(time.perf_counter() - start)
            # The union alone: plain git stages the refs, then sharing merges them.
            clone = GitRepo.discover(fresh_clone(work / f"g{r}"))
            staging = f"{sharing.STAGE_PREFIX}{remote.stage}/*"
            sh(clone.root, "git", "fetch", "-q", url1, f"refs/gitcache/*:{staging}")
            staged = list(clone.refs(sharing.STAGE_PREFIX))
            start = time.perf_counter()
            sharing._merge(RecordStore(clone), choose_remote(clone, url1), staged)
            timings["union"].append(time.perf_counter() - start)

    for name, values in timings.items():
        print(f"  {name:<10} " + "  ".join(f"{v:.3f}" for v in values))
    best = {k: min(v) for k, v in timings.items()}
    print(f"(best of {args.rounds} rounds, git daemon on 127.0.0.1, {os.cpu_count()} cores)")
    print(
        f"Python start-up (gitcache --version) {best['start-up']:.3f} s; "
        f"in-process fetch {best['in-process fetch']:.3f} s, of which the union "
        f"{best['union']:.3f} s"
    )
    for what in ("push", "fetch", "miss"):
        gc, git = best[f"gc {what}"], best[f"git {what}"]
        label = {
            "push": "push of all records",
            "fetch": "fetch of all records",
            "miss": "miss look-up (1 ref)",
        }[what]
        anchor = {
            "push": "git push --mirror",
            "fetch": "git fetch refs/gitcache/*",
            "miss": "git fetch of that ref",
        }[what]
        print(
            f"{label:<24} gitcache {gc:7.3f} s   {anchor:<26} {git:7.3f} s   ratio {gc / git:.2f}x"
        )


if __name__ == "__main__":
    main()

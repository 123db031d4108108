"""Benchmarks for managing records and parallel runs (issue 3).

    python tests/benchmarks/bench_manage.py [--only parallel,log,assert]
        [--steps 20] [--seconds 1] [--records 10000] [--files 10000]

Each section prints gitcache's figure beside the floor (the least the job can
cost) and an anchor (what a well-known tool takes for the same job):

- parallel: `gitcache run -j 2` on N independent steps of S seconds, against the
  serial run; floor N*S/2; anchor `make -j 2` running the same commands.
- log: `gitcache log` over R records written through RecordStore.write, with the
  record index warm and cold (deleted); floor `git for-each-ref` over the refs.
- assert: `gitcache run -s assert` over one step with F unchanged output files,
  with the stat cache and with .git/gitcache/statcache-v2.json deleted; floor one
  lstat per file in Python; anchor `git diff-files` with the files in git's index.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks.records_factory import make_records  # noqa: E402

ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def sh(root: Path, *args: str) -> None:
    subprocess.run(args, cwd=root, env=ENV, check=True, capture_output=True)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gitcache(root: Path, *args: str) -> Callable[[], None]:
    def call() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "gitcache", *args],
            cwd=root,
            env=ENV,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"gitcache {' '.join(args)} failed:\n{done.stderr.decode()}")

    return call


def new_repo(base: Path, name: str, toml: str) -> Path:
    root = base / name
    root.mkdir()
    sh(root, "git", "init", "-q", "-b", "main")
    (root / "gitcache.toml").write_text(toml)
    (root / ".gitignore").write_text("out/\n")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "bench")
    return root


def row(label: str, seconds: float, ref: float | None = None) -> None:
    ratio = f"  ({seconds / ref:.2f}x)" if ref else ""
    print(f"  {label:<52} {seconds:8.3f} s{ratio}")


def bench_parallel(base: Path, steps: int, seconds: float) -> None:
    print(f"parallel: {steps} independent steps of {seconds:g} s each")
    toml = "".join(
        f'[steps.s{i}]\noutputs = ["out/s{i}.txt"]\n'
        f'run = "sleep {seconds}; echo {i} > out/s{i}.txt"\n'
        for i in range(steps)
    )
    serial_root = new_repo(base, "serial", toml)
    parallel_root = new_repo(base, "parallel", toml)
    serial = timed(gitcache(serial_root, "run", "-s", "force"))
    parallel = timed(gitcache(parallel_root, "run", "-s", "force", "-j", "2"))
    makefile = base / "Makefile"
    makefile.write_text(
        "all: "
        + " ".join(f"s{i}" for i in range(steps))
        + "\n"
        + "".join(f"s{i}:\n\t@sleep {seconds}\n" for i in range(steps))
        + ".PHONY: all "
        + " ".join(f"s{i}" for i in range(steps))
        + "\n"
    )
    make = timed(lambda: sh(base, "make", "-s", "-j", "2", "-f", str(makefile)))
    floor = steps * seconds / 2
    row("floor (N*S/2)", floor)
    row("gitcache run (serial)", serial)
    row("gitcache run -j 2", parallel, floor)
    row("anchor: make -j 2", make, floor)
    print(f"  -j 2 / serial = {parallel / serial:.2f}")


def bench_log(base: Path, records: int) -> None:
    print(f"log: {records} records")
    root = new_repo(base, "log", '[steps.x]\nrun = "true"\n')
    t0 = time.perf_counter()
    make_records(root, records)
    print(
        f"  (wrote {records} records through RecordStore.write in {time.perf_counter() - t0:.1f} s)"
    )
    index = root / ".git" / "gitcache" / "record-index-v2.json"
    floor = timed(lambda: sh(root, "git", "for-each-ref", "refs/gitcache/sig/"), 3)
    warm = timed(gitcache(root, "log"), 3)
    warm_n = timed(gitcache(root, "log", "-n", "20"), 3)
    filtered = timed(gitcache(root, "log", "step3", "--param", "n=3"), 3)

    def cold_once() -> None:
        index.unlink(missing_ok=True)
        gitcache(root, "log")()

    cold = timed(cold_once, 2)
    startup = timed(gitcache(root, "--version"), 3)
    row("floor: git for-each-ref refs/gitcache/sig/", floor)
    row("gitcache --version (interpreter start-up)", startup)
    row("gitcache log (record index warm)", warm, floor)
    row("gitcache log -n 20", warm_n, floor)
    row("gitcache log STEP --param n=3", filtered, floor)
    row("gitcache log (record index deleted first)", cold, floor)


def bench_assert(base: Path, files: int) -> None:
    print(f"assert: one step with {files} unchanged output files")
    toml = '[steps.many]\noutputs = ["out/many"]\nrun = "python3 gen.py"\n'
    root = new_repo(base, "assert", toml)
    (root / "gen.py").write_text(
        "import os\nos.makedirs('out/many', exist_ok=True)\n"
        f"for i in range({files}):\n    open(f'out/many/f{{i}}', 'w').write(str(i))\n"
    )
    sh(root, "git", "add", "gen.py")
    sh(root, "git", "commit", "-qm", "generator")
    gitcache(root, "run")()
    statcache = root / ".git" / "gitcache" / "statcache-v2.json"
    time.sleep(0.05)  # past the racy-clean window of the files just written
    gitcache(root, "run", "-s", "assert")()  # settle the stat cache
    warm = timed(gitcache(root, "run", "-s", "assert"), 3)

    def cold_once() -> None:
        statcache.unlink(missing_ok=True)
        gitcache(root, "run", "-s", "assert")()

    cold = timed(cold_once, 2)
    paths = [str(p) for p in (root / "out" / "many").iterdir()]
    floor = timed(lambda: [os.lstat(p) for p in paths], 3)
    (root / ".gitignore").write_text("")
    sh(root, "git", "add", "-A")
    anchor = timed(lambda: sh(root, "git", "diff-files", "--quiet"), 3)
    startup = timed(gitcache(root, "--version"), 3)
    row(f"floor: lstat {files} files (Python)", floor)
    row("gitcache --version (interpreter start-up)", startup)
    row("anchor: git diff-files (index holds the files)", anchor)
    row("gitcache run -s assert (stat cache)", warm, anchor)
    row("gitcache run -s assert (stat cache deleted)", cold, anchor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="parallel,log,assert")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--files", type=int, default=10000)
    args = parser.parse_args()
    sections = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="gitcache-bench-") as tmp:
        base = Path(tmp)
        if "parallel" in sections:
            bench_parallel(base, args.steps, args.seconds)
        if "log" in sections:
            bench_log(base, args.records)
        if "assert" in sections:
            bench_assert(base, args.files)


if __name__ == "__main__":
    main()

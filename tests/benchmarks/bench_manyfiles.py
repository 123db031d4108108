"""Per-file and per-record overhead: a 50,000-file output and a 1,000-item sweep.

gitcache runs from a source tree given with `--source` (default: this worktree), so
two trees can be timed side by side in one run (`--source A --source B`): each row
is timed for every tree in turn, round after round, so load from other processes
falls on all alike. Figures are wall seconds (median of the rounds) and, for
gitcache, its own CPU seconds (children excluded).

Many files (issue 9): one step writes FILES small files in DIRS directories (a
Python script). Rows: `git add` and `git status` of the same tree (in a plain
repository); gitcache's first run; the first no-op after it; a no-op; a restore
after the directory was deleted; the no-op after the restore. The step alone (the
script writing a sibling directory of the same repository) is timed just before the
first run and just before the restore, and the ratios are taken per round from those
pairs: on a shared machine the disk's speed moves by more than the differences.

Sweep (issue 11): the 1,000-item matrix of bench_sweeps.py (`echo {a} {b} >
out/{a}-{b}.txt`). Rows: the same 1,000 commands from a shell loop; gitcache's
first run (no records, no state); its no-op.

    python tests/benchmarks/bench_manyfiles.py
    python tests/benchmarks/bench_manyfiles.py --source /work/main --source . --runs 3
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(WORKTREE))

from tests.benchmarks.bench_sweeps import gitcache_toml, shell_loop  # noqa: E402

FILES = 50_000
DIRS = 50

GEN = """\
import os, sys
root = sys.argv[1]
per = {files} // {dirs}
for d in range({dirs}):
    os.makedirs(f"{{root}}/d{{d:02}}", exist_ok=True)
    for f in range(per):
        with open(f"{{root}}/d{{d:02}}/f{{f:05}}.txt", "w") as h:
            h.write(f"file {{d}} {{f}}\\n")
"""

TOML = """\
[steps.many]
inputs = ["gen.py"]
outputs = ["out"]
run = "{python} gen.py out"
"""

_CPU = """\
import resource, sys, atexit
@atexit.register
def _cpu():
    me = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write(f"\\nbench-cpu {me.ru_utime + me.ru_stime:.6f}\\n")
from gitcache.cli.main import main
main(sys.argv[1:], prog_name="gitcache")
"""


class Rows:
    def __init__(self) -> None:
        self.wall: dict[tuple[str, str], list[float]] = {}
        self.cpu: dict[tuple[str, str], list[float]] = {}

    def add(self, tree: str, row: str, wall: float, cpu: float | None = None) -> None:
        self.wall.setdefault((tree, row), []).append(wall)
        if cpu is not None:
            self.cpu.setdefault((tree, row), []).append(cpu)

    def median(self, tree: str, row: str) -> float:
        return statistics.median(self.wall[(tree, row)])


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return wall, done.stderr


def _gitcache(source: str, cwd: Path, *args: str) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": source}
    wall, err = _run([sys.executable, "-c", _CPU, *args], cwd, env)
    cpu = float(err.rsplit("bench-cpu ", 1)[1].split()[0])
    return wall, cpu, err


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _fresh_repo(root: Path, files: dict[str, str]) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "bench")


def bench_many(sources: list[str], runs: int, base: Path, rows: Rows) -> None:
    gen = GEN.format(files=FILES, dirs=DIRS)
    toml = TOML.format(python=sys.executable)
    plain = base / "plain"
    for round_ in range(runs):
        print(f"bench: many files, round {round_ + 1} of {runs}", file=sys.stderr)
        _fresh_repo(plain, {"gen.py": gen})
        wall, _ = _run([sys.executable, "gen.py", "out"], plain, dict(os.environ))
        rows.add("-", "step alone", wall)
        wall, _ = _run(["git", "add", "out"], plain, dict(os.environ))
        rows.add("-", "git add", wall)
        wall, _ = _run(["git", "status", "--porcelain"], plain, dict(os.environ))
        rows.add("-", "git status", wall)
        for number, source in enumerate(sources):
            repo = base / f"many-{number}"
            _fresh_repo(repo, {"gen.py": gen, "gitcache.toml": toml, ".gitignore": "out/\n"})
            for row, prepare in (
                ("first run", None),
                ("first no-op", None),
                ("no-op", None),
                ("restore", lambda r=repo: shutil.rmtree(r / "out")),
                ("no-op after restore", None),
            ):
                if prepare is not None:
                    prepare()
                if row in ("first run", "restore"):
                    # The step alone, just before, in the same repository: the ratios
                    # are taken per round from this pair (the disk's speed varies).
                    wall, _ = _run([sys.executable, "gen.py", "alone"], repo, dict(os.environ))
                    rows.add(source, f"step alone, before {row}", wall)
                    shutil.rmtree(repo / "alone")
                wall, cpu, err = _gitcache(source, repo, "run")
                rows.add(source, row, wall, cpu)
                if "error" in err:
                    raise SystemExit(f"bench: {row}: {err}")


def bench_sweep(sources: list[str], runs: int, base: Path, rows: Rows) -> None:
    loop = base / "loop"
    for round_ in range(runs):
        print(f"bench: sweep, round {round_ + 1} of {runs}", file=sys.stderr)
        shutil.rmtree(loop, ignore_errors=True)
        loop.mkdir()
        start = time.perf_counter()
        subprocess.run(["sh", "-c", shell_loop()], cwd=loop, check=True)
        rows.add("-", "shell loop", time.perf_counter() - start)
        for number, source in enumerate(sources):
            repo = base / f"sweep-{number}"
            _fresh_repo(repo, {"gitcache.toml": gitcache_toml(100), ".gitignore": "out/\n"})
            wall, cpu, _ = _gitcache(source, repo, "run", "-q")
            rows.add(source, "sweep first run", wall, cpu)
            _gitcache(source, repo, "run", "-q")  # settles racily clean entries
            wall, cpu, _ = _gitcache(source, repo, "run", "-q")
            rows.add(source, "sweep no-op", wall, cpu)


def _ratios(rows: Rows, tree: str, row: str, base: str, base_tree: str | None = None) -> float:
    """The median over rounds of row / base, each pair from one round."""
    below = rows.wall[(tree if base_tree is None else base_tree, base)]
    pairs = zip(rows.wall[(tree, row)], below, strict=True)
    return statistics.median(a / b for a, b in pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--source", action="append", help="a gitcache source tree")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-many", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args(argv)
    sources = [str(Path(s).resolve()) for s in (args.source or [str(WORKTREE)])]
    rows = Rows()
    with tempfile.TemporaryDirectory(prefix="gitcache-bench-manyfiles-") as scratch:
        if not args.skip_many:
            bench_many(sources, args.runs, Path(scratch), rows)
        if not args.skip_sweep:
            bench_sweep(sources, args.runs, Path(scratch), rows)
    print(
        f"\nmedian of {args.runs} rounds; {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}; load average now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'row':<22} {'tree':<40} {'wall s':>8} {'cpu s':>8}")
    for (tree, row), walls in rows.wall.items():
        cpus = rows.cpu.get((tree, row))
        cpu = f"{statistics.median(cpus):8.3f}" if cpus else f"{'':>8}"
        print(f"{row:<22} {tree[-40:]:<40} {statistics.median(walls):8.3f} {cpu}")
    for source in sources:
        print(f"\n{source}:")
        if not args.skip_many:
            print(f"  no-op: {rows.median(source, 'no-op'):.3f} s (target <= 0.5)")
            restore = _ratios(rows, source, "restore", "step alone, before restore")
            print(f"  restore / step alone (per round): {restore:.2f}x (target <= 1.5)")
            store = statistics.median(
                a - b
                for a, b in zip(
                    rows.wall[(source, "first run")],
                    rows.wall[(source, "step alone, before first run")],
                    strict=True,
                )
            )
            print(
                f"  first run - step alone (per round): {store:.3f} s; / git add: "
                f"{store / rows.median('-', 'git add'):.2f}x (target <= 1.5)"
            )
        if not args.skip_sweep:
            first = _ratios(rows, source, "sweep first run", "shell loop", "-")
            print(f"  sweep first run / shell loop (per round): {first:.2f}x (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sweep benchmark: a 1,000-item matrix, for gitcache and DVC's `matrix` stage, one run.

The same sweep (axis `a` with 100 values, axis `b` with 10; each item writes
`out/<a>-<b>.txt` with a trivial `echo`) is built for gitcache (`matrix` in
gitcache.toml) and DVC 3.x (`matrix` in dvc.yaml), each in a fresh git repository.
Timed, in interleaved rounds (load from other processes falls on every row alike):

- the floor: the same 1,000 commands, each as `sh -c CMD`, from a shell loop;
- gitcache's first run (records and refs removed, outputs deleted before each round);
- the same first run in a repository that also tracks 10,000 small files (what a
  step's provenance costs grows with the tracked files: docs/records-and-commits.md);
- the no-op of each tool over the 1,000 items;
- gitcache after adding one value to `a` (10 new items): only they run; the
  new items' records and outputs are removed again after each round.

Targets (issue 11): no-op <= 0.8 s and >= 5x faster than DVC's no-op; first run
<= 3x the shell loop; adding a value runs only the new items at no-op cost for
the rest. Everything is installed into the benchmark's own virtual environment:
gitcache from this worktree (not editable), `dvc` from the package index.

    python tests/benchmarks/bench_sweeps.py                  # 3 rounds, with DVC
    python tests/benchmarks/bench_sweeps.py --reuse-venv --runs 5
    python tests/benchmarks/bench_sweeps.py --skip-anchors   # gitcache and the floor only
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
from dataclasses import dataclass, field
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(WORKTREE))

from tests.benchmarks.bench_noop import (  # noqa: E402
    BenchError,
    _check,
    _isolated_env,
    _pip,
    _timed,
)

A_VALUES = 100
B_VALUES = 10
TRACKED = 10_000  # files the second gitcache repository tracks besides the workflow


@dataclass
class Row:
    name: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    note: str = ""
    failed: str = ""

    def add(self, timing: tuple[float, float]) -> None:
        self.wall.append(timing[0])
        self.cpu.append(timing[1])

    @property
    def median(self) -> float:
        return statistics.median(self.wall) if self.wall else float("nan")


def gitcache_toml(a_values: int) -> str:
    a = ", ".join(str(i) for i in range(a_values))
    b = ", ".join(str(i) for i in range(B_VALUES))
    return (
        f"[steps.sweep]\nmatrix = {{ a = [{a}], b = [{b}] }}\n"
        'outputs = ["out/{a}-{b}.txt"]\nrun = "echo {a} {b} > {outputs}"\n'
    )


def dvc_yaml() -> str:
    a = ", ".join(str(i) for i in range(A_VALUES))
    b = ", ".join(str(i) for i in range(B_VALUES))
    return (
        "stages:\n  sweep:\n    matrix:\n"
        f"      a: [{a}]\n      b: [{b}]\n"
        "    cmd: mkdir -p out && echo ${item.a} ${item.b} > out/${item.a}-${item.b}.txt\n"
        "    outs:\n      - out/${item.a}-${item.b}.txt\n"
    )


def shell_loop() -> str:
    """The floor: every item's command, each through `sh -c`, from one shell loop."""
    a = " ".join(str(i) for i in range(A_VALUES))
    b = " ".join(str(i) for i in range(B_VALUES))
    return (
        f'mkdir -p out; for a in {a}; do for b in {b}; do sh -c "echo $a $b > out/$a-$b.txt"; '
        "done; done"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    bindir = _prepare_venv(args)
    rows = {
        name: Row(name)
        for name in (
            "shell loop",
            "gitcache first",
            "first, 10k files",
            "gitcache no-op",
            "gitcache +value",
            "dvc no-op",
        )
    }
    with tempfile.TemporaryDirectory(prefix="gitcache-bench-sweeps-") as scratch:
        base = Path(scratch)
        (base / "home").mkdir()
        env = _isolated_env(base / "home")
        ours = _setup_gitcache(base / "gitcache", env)
        tracking = _setup_gitcache(base / "gitcache-tracking", env, TRACKED)
        loop_dir = base / "loop"
        loop_dir.mkdir()
        dvc = None
        if args.skip_anchors or not (bindir / "dvc").exists():
            rows["dvc no-op"].failed = "skipped" if args.skip_anchors else "dvc not installed"
        else:
            try:
                dvc = _setup_dvc(base / "dvc", bindir, env, rows["dvc no-op"])
            except BenchError as exc:
                rows["dvc no-op"].failed = str(exc).splitlines()[0][:90]
        gitcache = [str(bindir / "gitcache"), "run", "-q"]
        for round_ in range(args.runs):
            print(f"bench: round {round_ + 1} of {args.runs}", file=sys.stderr)
            shutil.rmtree(loop_dir / "out", ignore_errors=True)
            rows["shell loop"].add(_timed(["sh", "-c", shell_loop()], loop_dir, env))
            _reset(ours, env)
            rows["gitcache first"].add(_timed(gitcache, ours, env))
            _reset(tracking, env)
            rows["first, 10k files"].add(_timed(gitcache, tracking, env))
            _check(gitcache, ours, env)  # settles racily-clean stat entries
            if dvc is not None:
                rows["dvc no-op"].add(_timed([str(bindir / "dvc"), "repro"], dvc, env))
            rows["gitcache no-op"].add(_timed(gitcache, ours, env))
            _expect_all_up_to_date(bindir, ours, env)
            (ours / "gitcache.toml").write_text(gitcache_toml(A_VALUES + 1))
            rows["gitcache +value"].add(_timed(gitcache, ours, env))
            _expect_new_items_only(bindir, ours, env)
    _print(rows, args)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "gitcache-bench-sweeps-venv",
        help="the benchmark's virtual environment (created if missing)",
    )
    parser.add_argument("--reuse-venv", action="store_true", help="no pip at all")
    parser.add_argument("--skip-anchors", action="store_true", help="no DVC")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def _prepare_venv(args: argparse.Namespace) -> Path:
    import venv

    bindir: Path = args.venv / "bin"
    if args.reuse_venv and (bindir / "gitcache").exists():
        return bindir
    if not (bindir / "python").exists():
        venv.EnvBuilder(with_pip=True).create(args.venv)
    pip = [str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    print(f"bench: installing gitcache from {WORKTREE}", file=sys.stderr)
    _pip([*pip, "--force-reinstall", "--no-deps", str(WORKTREE)], "gitcache", required=True)
    _pip([*pip, str(WORKTREE)], "gitcache's dependencies", required=True)
    if not args.skip_anchors:
        print("bench: installing dvc (slow once, then already there)", file=sys.stderr)
        _pip([*pip, "dvc"], "dvc", required=False)
    return bindir


def _git_repo(root: Path, files: dict[str, str], env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sweep"]):
        _check(["git", *command], root, env)


def _setup_gitcache(root: Path, env: dict[str, str], tracked: int = 0) -> Path:
    files = {"gitcache.toml": gitcache_toml(A_VALUES), ".gitignore": "out/\n"}
    for n in range(tracked):  # 100 files a directory, as source trees go
        files[f"src/d{n // 100:03d}/f{n % 100:02d}.py"] = f"x = {n}\n"
    _git_repo(root, files, env)
    return root


def _reset(root: Path, env: dict[str, str]) -> None:
    """No records, no refs, no outputs, no state: the next run is a first run."""
    (root / "gitcache.toml").write_text(gitcache_toml(A_VALUES))
    refs = _check(
        ["git", "for-each-ref", "--format=delete %(refname)", "refs/gitcache/"], root, env
    )
    if refs.stdout:
        subprocess.run(
            ["git", "update-ref", "--stdin"],
            cwd=root,
            env=env,
            input=refs.stdout,
            check=True,
            text=True,
        )
    shutil.rmtree(root / "out", ignore_errors=True)
    shutil.rmtree(root / ".git" / "gitcache", ignore_errors=True)


def _expect_all_up_to_date(bindir: Path, root: Path, env: dict[str, str]) -> None:
    done = _check([str(bindir / "gitcache"), "run"], root, env)
    items = A_VALUES * B_VALUES
    if f"gitcache: {items} steps: {items} up to date" not in done.stderr:
        raise BenchError(f"the no-op did not find every item up to date:\n{done.stderr[-500:]}")


def _expect_new_items_only(bindir: Path, root: Path, env: dict[str, str]) -> None:
    """The +value run ran the 10 new items only; then they go again for the next round."""
    new = [f"out/{A_VALUES}-{b}.txt" for b in range(B_VALUES)]
    if not all((root / p).exists() for p in new):
        raise BenchError("adding a value did not run its items")
    log = _check([str(bindir / "gitcache"), "log", "--json", f"sweep[a={A_VALUES}]"], root, env)
    if log.stdout.count('"label"') != B_VALUES:
        raise BenchError(f"expected {B_VALUES} records of the new items:\n{log.stdout[:500]}")
    total = _check([str(bindir / "gitcache"), "log", "--json"], root, env).stdout.count('"label"')
    if total != (A_VALUES + 1) * B_VALUES:
        raise BenchError(f"expected {(A_VALUES + 1) * B_VALUES} records, found {total}")
    _check([str(bindir / "gitcache"), "remove", f"sweep[a={A_VALUES}]"], root, env)
    for path in new:
        (root / path).unlink()
    (root / "gitcache.toml").write_text(gitcache_toml(A_VALUES))


def _setup_dvc(root: Path, bindir: Path, env: dict[str, str], row: Row) -> Path:
    _git_repo(root, {"dvc.yaml": dvc_yaml(), ".gitignore": "out/\n"}, env)
    _check([str(bindir / "dvc"), "init", "-q"], root, env)
    print("bench: dvc: first run of the sweep (slow: about 15 minutes here)", file=sys.stderr)
    start = time.perf_counter()
    first = subprocess.run(
        [str(bindir / "dvc"), "repro"], cwd=root, env=env, capture_output=True, timeout=7200
    )
    wall = time.perf_counter() - start
    if first.returncode != 0:
        raise BenchError(f"dvc repro exited {first.returncode}: {first.stderr[-500:]!r}")
    done = _check([str(bindir / "dvc"), "repro"], root, env)
    skipped = done.stdout.count("didn't change, skipping")
    if skipped != A_VALUES * B_VALUES:
        raise BenchError(f"dvc's no-op skipped {skipped} stages:\n{done.stdout[-500:]}")
    version = _check([str(bindir / "dvc"), "--version"], root, env).stdout.strip()
    row.note = f"DVC {version}; its first run {wall:.1f} s"
    return root


def _print(rows: dict[str, Row], args: argparse.Namespace) -> None:
    items = A_VALUES * B_VALUES
    print(
        f"\n{items}-item matrix; median of {args.runs} interleaved rounds; "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    )
    print(f"{'what':<16} {'wall s':>8} {'cpu s':>8}  note")
    for row in rows.values():
        if row.failed or not row.wall:
            print(f"{row.name:<16} {'-':>8} {'-':>8}  FAILED/SKIPPED: {row.failed}")
            continue
        cpu = statistics.median(row.cpu)
        print(f"{row.name:<16} {row.median:>8.3f} {cpu:>8.3f}  {row.note}")
    loop, first = rows["shell loop"].median, rows["gitcache first"].median
    noop, added = rows["gitcache no-op"].median, rows["gitcache +value"].median
    print(f"\nfirst run / shell loop: {first / loop:.2f}x (target <= 3)")
    tracking = rows["first, 10k files"].median
    print(f"first run with {TRACKED:,} tracked files / shell loop: {tracking / loop:.2f}x")
    print(f"no-op: {noop:.3f} s (target <= 0.8 s)")
    if rows["dvc no-op"].wall:
        print(f"dvc no-op / gitcache no-op: {rows['dvc no-op'].median / noop:.1f}x (target >= 5)")
    print(
        f"+value ({B_VALUES} new items) - no-op: {added - noop:.3f} s; the new items' share "
        f"of a first run: {first * B_VALUES / items:.3f} s"
    )


if __name__ == "__main__":
    sys.exit(main())

"""No-op benchmark: a 50-step chain, run once, then timed when nothing changed.

Each step `cat`s the previous step's output and adds one line. The same chain is
built for gitcache (gitcache.toml), DVC 3.x (dvc.yaml) and SoS (a script with
runtime signatures), each in a fresh git repository. After one full run, the
no-op run of each tool is timed (median of --runs) and printed beside Python's
bare start-up and the import floor of gitcache's dependencies.

Everything is installed into the benchmark's own virtual environment (never the
system interpreter): gitcache from this worktree (not editable), `dvc` and `sos`
from the package index. A tool that fails to install or run is reported and left
out; the rest goes on.

    python tests/benchmarks/bench_noop.py                  # all tools, 5 runs each
    python tests/benchmarks/bench_noop.py --reuse-venv     # keep the installed venv
    python tests/benchmarks/bench_noop.py --skip-anchors --runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]
IMPORT_FLOOR = "import pygit2, pydantic, click, blake3, filelock"

# Runs inside the benchmark venv: the no-op through the Python API, to see what it read.
_API_CHECK = """
import json, sys
from pathlib import Path
from gitcache.engine import Engine, RunOptions
from gitcache.project import Project

class Silent:
    def step_started(self, step, action): pass
    def step_finished(self, result): pass
    def output(self, step, stream, data): pass
    def warning(self, message): pass

project = Project.open(Path(sys.argv[1]))
summary = Engine(project, RunOptions(), Silent()).run([])
project.save()
print(json.dumps({"outcomes": sorted({r.outcome for r in summary.results}),
                  "steps": len(summary.results), "hashed": project.worktree.cache.hashed}))
"""


class BenchError(Exception):
    """A tool could not be installed, set up or run; the benchmark goes on without it."""


@dataclass
class Row:
    name: str
    command: str
    seconds: float | None  # median; None if the tool could not be measured
    note: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    bindir = _prepare_venv(args)
    env = _isolated_env(Path(tempfile.mkdtemp(prefix="gitcache-bench-home-")))
    python = str(bindir / "python")
    rows = [
        Row("python -c pass", "python -c pass", _median([python, "-c", "pass"], None, env, args)),
        Row(
            "import floor",
            f'python -c "{IMPORT_FLOOR}"',
            _median([python, "-c", IMPORT_FLOOR], None, env, args),
        ),
    ]
    tools: list[tuple[str, Callable[[Path, Path, dict[str, str], argparse.Namespace], Row]]] = [
        ("gitcache", _bench_gitcache)
    ]
    if not args.skip_anchors:
        tools += [("dvc", _bench_dvc), ("sos", _bench_sos)]
    with tempfile.TemporaryDirectory(prefix="gitcache-bench-") as scratch:
        for name, bench in tools:
            if name != "gitcache" and not (bindir / name).exists():
                rows.append(Row(name, "", None, f"not installed in {args.venv}"))
                continue
            try:
                rows.append(bench(Path(scratch) / name, bindir, env, args))
            except BenchError as exc:
                print(f"bench: {name}: {exc}", file=sys.stderr)
                rows.append(Row(name, "", None, str(exc).splitlines()[0][:80]))
    _print_table(rows, args)
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / ("gitcache-bench-venv"),
        help="the benchmark's virtual environment (created if missing)",
    )
    parser.add_argument(
        "--reuse-venv",
        action="store_true",
        help="use the venv as it is (no pip at all) if it has gitcache",
    )
    parser.add_argument(
        "--skip-anchors", action="store_true", help="only gitcache and the floor (no DVC, no SoS)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed no-op runs per tool")
    parser.add_argument("--steps", type=int, default=50, help="length of the chain")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 2:
        parser.error("--runs must be >= 1 and --steps >= 2")
    return args


# -- the venv ---------------------------------------------------------------------------


def _prepare_venv(args: argparse.Namespace) -> Path:
    bindir = args.venv / "bin"
    if args.reuse_venv and (bindir / "gitcache").exists():
        print(f"bench: reusing {args.venv} as it is", file=sys.stderr)
        return bindir
    if not (bindir / "python").exists():
        print(f"bench: creating {args.venv}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(args.venv)
    pip = [str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    print(f"bench: installing gitcache from {WORKTREE}", file=sys.stderr)
    # Not editable: the benchmark measures an installed gitcache, as users get it.
    _pip([*pip, "--force-reinstall", "--no-deps", str(WORKTREE)], "gitcache", required=True)
    _pip([*pip, str(WORKTREE)], "gitcache's dependencies", required=True)
    if not args.skip_anchors:
        for package in ("dvc", "sos"):
            print(
                f"bench: installing {package} (once; later runs find it installed)", file=sys.stderr
            )
            _pip([*pip, package], package, required=False)
    return bindir


def _pip(command: list[str], what: str, required: bool) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    if required:
        sys.exit(f"bench: could not install {what}: {tail}")
    print(f"bench: could not install {what}, leaving it out: {tail}", file=sys.stderr)


def _isolated_env(home: Path) -> dict[str, str]:
    """The tools' environment: a throw-away HOME (SoS writes ~/.sos), pinned git identity."""
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PYTHON"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        DVC_NO_ANALYTICS="1",
        LC_ALL="C",
    )
    return env


# -- the chain, for each tool --------------------------------------------------------------


def _git_repo(root: Path, files: dict[str, str], env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "chain"]):
        _check(["git", *command], root, env)


def _name(i: int) -> str:
    return f"s{i:02d}"


def gitcache_toml(steps: int) -> str:
    parts = [
        f'[steps.{_name(0)}]\noutputs = ["out/{_name(0)}.txt"]\nrun = "echo line 0 > {{outputs}}"\n'
    ]
    for i in range(1, steps):
        parts.append(
            f'[steps.{_name(i)}]\ninputs = ["out/{_name(i - 1)}.txt"]\n'
            f'outputs = ["out/{_name(i)}.txt"]\n'
            f'run = "cat {{inputs}} > {{outputs}} && echo line {i} >> {{outputs}}"\n'
        )
    return "\n".join(parts)


def dvc_yaml(steps: int) -> str:
    lines = ["stages:"]
    for i in range(steps):
        out = f"out/{_name(i)}.txt"
        if i == 0:
            cmd = f"mkdir -p out && echo line 0 > {out}"
        else:
            dep = f"out/{_name(i - 1)}.txt"
            cmd = f"cat {dep} > {out} && echo line {i} >> {out}"
            lines += [
                f"  {_name(i)}:",
                f"    cmd: {cmd}",
                f"    deps: [{dep}]",
                f"    outs: [{out}]",
            ]
            continue
        lines += [f"  {_name(i)}:", f"    cmd: {cmd}", f"    outs: [{out}]"]
    return "\n".join(lines) + "\n"


def sos_script(steps: int) -> str:
    # Numbered sections form SoS's default forward workflow; input/output statements give
    # each step a runtime signature, so a second run skips them ("ignored").
    parts = [f"[1]\noutput: 'out/{_name(0)}.txt'\nsh: expand=True\n    echo line 0 > {{_output}}\n"]
    for i in range(1, steps):
        parts.append(
            f"[{i + 1}]\ninput: 'out/{_name(i - 1)}.txt'\noutput: 'out/{_name(i)}.txt'\n"
            f"sh: expand=True\n    cat {{_input}} > {{_output}}\n"
            f"    echo line {i} >> {{_output}}\n"
        )
    return "\n".join(parts)


def _bench_gitcache(root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace) -> Row:
    _git_repo(root, {"gitcache.toml": gitcache_toml(args.steps), ".gitignore": "out/\n"}, env)
    command = [str(bindir / "gitcache"), "run"]
    first = _first_run(command, root, env, args.steps, "gitcache")
    refs = _check(["git", "for-each-ref", "refs/gitcache/"], root, env).stdout
    done = _check(command, root, env)
    expected = f"gitcache: {args.steps} steps: {args.steps} up to date"
    if done.stderr.strip().splitlines()[-1:] != [expected] or "running" in done.stderr:
        raise BenchError(f"the no-op did not report every step up to date:\n{done.stderr}")
    seconds = _timed_noop(command, root, env, args, "gitcache")
    if _check(["git", "for-each-ref", "refs/gitcache/"], root, env).stdout != refs:
        raise BenchError("the no-op runs changed refs/gitcache/")
    api = json.loads(
        _check([str(bindir / "python"), "-c", _API_CHECK, str(root)], root, env).stdout
    )
    if api != {"outcomes": ["skipped"], "steps": args.steps, "hashed": 0}:
        raise BenchError(f"the no-op through the API did more than stat files: {api}")
    return Row(
        "gitcache run",
        "gitcache run",
        seconds,
        f"first run {first:.2f} s; no-op hashed 0 files, wrote no ref",
    )


def _bench_dvc(root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace) -> Row:
    _git_repo(root, {"dvc.yaml": dvc_yaml(args.steps)}, env)
    _check([str(bindir / "dvc"), "init", "-q"], root, env)
    command = [str(bindir / "dvc"), "repro"]
    first = _first_run(command, root, env, args.steps, "dvc")
    done = _check(command, root, env)
    if done.stdout.count("didn't change, skipping") != args.steps:
        raise BenchError(f"dvc's no-op did not skip every stage:\n{done.stdout}")
    seconds = _timed_noop(command, root, env, args, "dvc")
    return Row(
        "dvc repro", "dvc repro", seconds, f"DVC {_version(bindir, 'dvc')}; first run {first:.2f} s"
    )


def _bench_sos(root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace) -> Row:
    _git_repo(root, {"chain.sos": sos_script(args.steps), "out/.keep": ""}, env)
    command = [str(bindir / "sos"), "run", "chain.sos"]
    first = _first_run(command, root, env, args.steps, "sos")
    done = _check(command, root, env)
    if done.stderr.count("ignored") < args.steps:
        raise BenchError(f"sos's no-op did not skip every step:\n{done.stderr[-2000:]}")
    seconds = _timed_noop(command, root, env, args, "sos")
    return Row(
        "sos run",
        "sos run chain.sos",
        seconds,
        f"SoS {_version(bindir, 'sos')}; first run {first:.2f} s",
    )


def _version(bindir: Path, tool: str) -> str:
    done = subprocess.run(
        [str(bindir / tool), "--version"], capture_output=True, text=True, check=False
    )
    words = done.stdout.split()
    return words[1] if tool == "sos" and len(words) > 1 else (words or ["?"])[0]


# -- running and timing ----------------------------------------------------------------------


def _first_run(command: list[str], root: Path, env: dict[str, str], steps: int, tool: str) -> float:
    start = time.perf_counter()
    _check(command, root, env)
    seconds = time.perf_counter() - start
    last = root / "out" / f"{_name(steps - 1)}.txt"
    lines = last.read_text().splitlines() if last.exists() else []
    if lines != [f"line {i}" for i in range(steps)]:
        raise BenchError(f"{tool}: the first run did not build the chain ({last})")
    return seconds


def _timed_noop(
    command: list[str], root: Path, env: dict[str, str], args: argparse.Namespace, tool: str
) -> float:
    """Median wall time of the no-op; fails if any run touched an output (something ran)."""
    outputs = sorted((root / "out").glob("s*.txt"))
    before = [p.stat().st_mtime_ns for p in outputs]
    seconds = _median(command, root, env, args)
    if [p.stat().st_mtime_ns for p in outputs] != before:
        raise BenchError(f"{tool}: a no-op run rewrote outputs")
    return seconds


def _median(
    command: list[str], cwd: Path | None, env: dict[str, str], args: argparse.Namespace
) -> float:
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        _check(command, cwd, env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _check(
    command: list[str], cwd: Path | None, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-2000:]
        raise BenchError(
            f"{Path(command[0]).name} {' '.join(command[1:])} exited {done.returncode}: {output}"
        )
    return done


# -- the table ----------------------------------------------------------------------------------


def _print_table(rows: list[Row], args: argparse.Namespace) -> None:
    floor = next(r.seconds for r in rows if r.name == "import floor")
    assert floor is not None
    print(
        f"\nno-op of a {args.steps}-step chain, median of {args.runs} runs, "
        f"{os.cpu_count()} cores, Python {'.'.join(map(str, sys.version_info[:3]))} "
        f"(bench driver)"
    )
    print(f"{'what':<16} {'median s':>9} {'x floor':>8}  note")
    for row in rows:
        if row.seconds is None:
            print(f"{row.name:<16} {'-':>9} {'-':>8}  {row.note}")
        else:
            print(f"{row.name:<16} {row.seconds:>9.3f} {row.seconds / floor:>8.2f}  {row.note}")
    ours = next((r.seconds for r in rows if r.name == "gitcache run"), None)
    if ours is None:
        return
    for row in rows:
        if row.name in ("dvc repro", "sos run") and row.seconds is not None:
            print(f"gitcache no-op is {row.seconds / ours:.1f}x faster than {row.name}")


if __name__ == "__main__":
    sys.exit(main())

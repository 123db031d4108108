"""No-op benchmark: a 50-step chain, run once, then timed when nothing changed.

Each step `cat`s the previous step's output and adds one line. The same chain is
built for gitcache (gitcache.toml), DVC 3.x (dvc.yaml) and SoS (a script with
runtime signatures), each in a fresh git repository. After one full run, the
no-op run of each tool is timed and printed beside Python's bare start-up, the
import floor of the dependencies a no-op imports (`python -c "import pygit2, click,
blake3"`) and that of all gitcache's runtime dependencies (pydantic and filelock
too, which a no-op no longer imports).

Timed runs are interleaved (one of each per round, --runs rounds) so that load
from other processes falls on every row alike; the table gives the median wall
time and the median CPU time (user + system) of each. In each round the anchors
run first, then an untimed warm-up, then the quick commands back to back.

Everything is installed into the benchmark's own virtual environment (never the
system interpreter): gitcache from this worktree (not editable), `dvc` and `sos`
from the package index. A tool that fails to install or run is reported and left
out; the rest goes on.

    python tests/benchmarks/bench_noop.py                  # all tools, 5 rounds
    python tests/benchmarks/bench_noop.py --reuse-venv     # use the venv as it is
    python tests/benchmarks/bench_noop.py --skip-anchors --runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]
IMPORT_FLOOR = "import pygit2, click, blake3"  # what a no-op imports (tests/test_noop.py)
ALL_DEPENDENCIES = "import pygit2, pydantic, click, blake3, filelock"

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
class Subject:
    """One row of the table: a command timed in a directory, and a check for afterwards."""

    name: str
    command: list[str]
    cwd: Path | None = None
    note: str = ""
    after: Callable[[], None] = lambda: None  # raises BenchError if the no-op did something
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failed: str = ""


Setup = Callable[[Path, Path, dict[str, str], argparse.Namespace], Subject]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    bindir = _prepare_venv(args)
    python = str(bindir / "python")
    subjects = [
        Subject("python -c pass", [python, "-c", "pass"]),
        Subject("import floor", [python, "-c", IMPORT_FLOOR]),
        Subject("all deps", [python, "-c", ALL_DEPENDENCIES]),
    ]
    setups: list[tuple[str, Setup]] = [("gitcache", _setup_gitcache)]
    if not args.skip_anchors:
        setups += [("dvc", _setup_dvc), ("sos", _setup_sos)]
    with tempfile.TemporaryDirectory(prefix="gitcache-bench-") as scratch:
        (Path(scratch) / "home").mkdir()
        env = _isolated_env(Path(scratch) / "home")
        for name, setup in setups:
            if name != "gitcache" and not (bindir / name).exists():
                subjects.append(Subject(name, [], failed=f"not installed in {args.venv}"))
                continue
            print(f"bench: {name}: building and running the chain once", file=sys.stderr)
            try:
                subjects.append(setup(Path(scratch) / name, bindir, env, args))
            except BenchError as exc:
                print(f"bench: {name}: {exc}", file=sys.stderr)
                subjects.append(Subject(name, [], failed=str(exc).splitlines()[0][:90]))
        _time_rounds(subjects, env, args)
    _print_table(subjects, bindir, args)
    return 0 if not any(s.failed for s in subjects if s.name.startswith("gitcache")) else 1


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "gitcache-bench-venv",
        help="the benchmark's virtual environment (created if missing)",
    )
    parser.add_argument(
        "--reuse-venv",
        action="store_true",
        help="use the venv as it is (no pip at all) if gitcache is installed in it",
    )
    parser.add_argument(
        "--skip-anchors", action="store_true", help="only gitcache and the floor (no DVC, no SoS)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--steps", type=int, default=50, help="length of the chain (default 50)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.steps < 2:
        parser.error("--runs must be >= 1 and --steps >= 2")
    return args


# -- the venv ---------------------------------------------------------------------------


def _prepare_venv(args: argparse.Namespace) -> Path:
    bindir: Path = args.venv / "bin"
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
            print(f"bench: installing {package} (slow once, then already there)", file=sys.stderr)
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
        lines.append(f"  {_name(i)}:")
        if i == 0:
            lines += [f"    cmd: mkdir -p out && echo line 0 > {out}", f"    outs: [{out}]"]
            continue
        dep = f"out/{_name(i - 1)}.txt"
        lines += [
            f"    cmd: cat {dep} > {out} && echo line {i} >> {out}",
            f"    deps: [{dep}]",
            f"    outs: [{out}]",
        ]
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


def _git_repo(root: Path, files: dict[str, str], env: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "chain"]):
        _check(["git", *command], root, env)


def _setup_gitcache(
    root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace
) -> Subject:
    _git_repo(root, {"gitcache.toml": gitcache_toml(args.steps), ".gitignore": "out/\n"}, env)
    command = [str(bindir / "gitcache"), "run"]
    first = _first_run(command, root, env, args.steps, "gitcache")
    done = _check(command, root, env)  # the first no-op: settles racily-clean stat entries
    expected = f"gitcache: {args.steps} steps: {args.steps} up to date"
    if done.stderr.strip().splitlines()[-1:] != [expected] or "running" in done.stderr:
        raise BenchError(f"the no-op did not report every step up to date:\n{done.stderr}")
    refs = _check(["git", "for-each-ref", "refs/gitcache/"], root, env).stdout
    unchanged = _outputs_unchanged(root, "gitcache")

    def after() -> None:
        unchanged()
        if _check(["git", "for-each-ref", "refs/gitcache/"], root, env).stdout != refs:
            raise BenchError("the no-op runs changed refs/gitcache/")
        check = [str(bindir / "python"), "-c", _API_CHECK, str(root)]
        api = json.loads(_check(check, root, env).stdout)
        if api != {"outcomes": ["skipped"], "steps": args.steps, "hashed": 0}:
            raise BenchError(f"the no-op through the API did more than stat files: {api}")

    note = f"first run {first:.2f} s; no-op: all up to date, 0 files hashed, no ref written"
    return Subject("gitcache run", command, root, note, after)


def _setup_dvc(root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace) -> Subject:
    _git_repo(root, {"dvc.yaml": dvc_yaml(args.steps)}, env)
    _check([str(bindir / "dvc"), "init", "-q"], root, env)
    command = [str(bindir / "dvc"), "repro"]
    first = _first_run(command, root, env, args.steps, "dvc")
    done = _check(command, root, env)
    if done.stdout.count("didn't change, skipping") != args.steps:
        raise BenchError(f"dvc's no-op did not skip every stage:\n{done.stdout}")
    note = f"DVC {_version(bindir, 'dvc')}; first run {first:.2f} s"
    return Subject("dvc repro", command, root, note, _outputs_unchanged(root, "dvc"))


def _setup_sos(root: Path, bindir: Path, env: dict[str, str], args: argparse.Namespace) -> Subject:
    _git_repo(root, {"chain.sos": sos_script(args.steps), "out/.keep": ""}, env)
    command = [str(bindir / "sos"), "run", "chain.sos"]
    first = _first_run(command, root, env, args.steps, "sos")
    done = _check(command, root, env)
    if done.stderr.count("due to saved signature") != args.steps:
        raise BenchError(f"sos's no-op did not skip every step:\n{done.stderr[-2000:]}")
    note = f"SoS {_version(bindir, 'sos')}; first run {first:.2f} s"
    return Subject("sos run", command, root, note, _outputs_unchanged(root, "sos"))


def _version(bindir: Path, tool: str) -> str:
    done = subprocess.run(
        [str(bindir / tool), "--version"], capture_output=True, text=True, check=False
    )
    words = done.stdout.split()
    return words[1] if tool == "sos" and len(words) > 1 else (words or ["?"])[0]


def _first_run(command: list[str], root: Path, env: dict[str, str], steps: int, tool: str) -> float:
    start = time.perf_counter()
    _check(command, root, env)
    seconds = time.perf_counter() - start
    last = root / "out" / f"{_name(steps - 1)}.txt"
    lines = last.read_text().splitlines() if last.exists() else []
    if lines != [f"line {i}" for i in range(steps)]:
        raise BenchError(f"{tool}: the first run did not build the chain ({last})")
    return seconds


def _outputs_unchanged(root: Path, tool: str) -> Callable[[], None]:
    """A check that no output was rewritten since now (a no-op runs no step)."""
    outputs = sorted((root / "out").glob("s*.txt"))
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs]

    def check() -> None:
        if [(p.stat().st_ino, p.stat().st_mtime_ns) for p in outputs] != before:
            raise BenchError(f"{tool}: a no-op run rewrote outputs")

    return check


# -- running and timing ----------------------------------------------------------------------


def _time_rounds(subjects: list[Subject], env: dict[str, str], args: argparse.Namespace) -> None:
    """One run of each subject per round, so load from elsewhere falls on all of them alike.

    The anchors go first in each round, then an untimed warm-up, then the quick commands:
    SoS spends seconds mostly idle, and a process started right after an idle spell runs
    measurably slower (~50 ms here), which would penalize whichever quick row came next.
    """
    live = [s for s in subjects if not s.failed]
    anchors = [s for s in live if s.name in ("dvc repro", "sos run")]
    quick = [s for s in live if s not in anchors]
    warm_up = next(s.command for s in quick if s.name == "import floor")
    print(f"bench: timing {args.runs} rounds of {len(live)} commands", file=sys.stderr)
    for _round in range(args.runs):
        for subject in [*anchors, None, *quick]:
            if subject is None:
                _check(warm_up, None, env)
                continue
            if subject.failed:
                continue
            try:
                wall, cpu = _timed(subject.command, subject.cwd, env)
            except BenchError as exc:
                subject.failed = str(exc).splitlines()[0][:90]
                continue
            subject.wall.append(wall)
            subject.cpu.append(cpu)
    for subject in live:
        if subject.failed:
            continue
        try:
            subject.after()
        except BenchError as exc:
            subject.failed = str(exc).splitlines()[0][:90]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], cwd: Path | None, env: dict[str, str]) -> tuple[float, float]:
    cpu = _children_cpu()
    start = time.perf_counter()
    _check(command, cwd, env)
    return time.perf_counter() - start, _children_cpu() - cpu


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


def _print_table(subjects: list[Subject], bindir: Path, args: argparse.Namespace) -> None:
    python = subprocess.run(
        [str(bindir / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    floor = next(s for s in subjects if s.name == "import floor")
    base_wall = statistics.median(floor.wall) if floor.wall else float("nan")
    base_cpu = statistics.median(floor.cpu) if floor.cpu else float("nan")
    print(
        f"\nno-op of a {args.steps}-step chain; median of {args.runs} interleaved rounds; "
        f"{os.cpu_count()} cores, {platform.machine()}, Python {python}"
    )
    print(f"{'what':<15} {'wall s':>7} {'x floor':>8} {'cpu s':>7} {'x floor':>8}  note")
    for s in subjects:
        if s.failed or not s.wall:
            print(f"{s.name:<15} {'-':>7} {'-':>8} {'-':>7} {'-':>8}  FAILED/SKIPPED: {s.failed}")
            continue
        wall, cpu = statistics.median(s.wall), statistics.median(s.cpu)
        print(
            f"{s.name:<15} {wall:>7.3f} {wall / base_wall:>8.2f} {cpu:>7.3f} "
            f"{cpu / base_cpu:>8.2f}  {s.note}"
        )
    ours = next((s for s in subjects if s.name == "gitcache run" and s.wall and not s.failed), None)
    if ours is None:
        return
    for s in subjects:
        if s.name in ("dvc repro", "sos run") and s.wall and not s.failed:
            wall = statistics.median(s.wall) / statistics.median(ours.wall)
            cpu = statistics.median(s.cpu) / statistics.median(ours.cpu)
            print(f"gitcache run is {wall:.1f}x faster than {s.name} ({cpu:.1f}x in CPU time)")


if __name__ == "__main__":
    sys.exit(main())

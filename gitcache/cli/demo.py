"""`gitcache demo`: the SoS runtime-signature tutorial, narrated, in a fresh repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from gitcache.gitrepo import GitRepo
from gitcache.starter import DEMO_SCRIPT, DEMO_TOML, DEMO_TOML_COMMENTED


def _say(text: str) -> None:
    click.secho(f"\n## {text}", bold=True)


def _gitcache(root: Path, *args: str) -> None:
    click.secho(f"$ gitcache {' '.join(args)}", fg="cyan")
    sys.stdout.flush()
    # The child must import this very gitcache, installed or not.
    package_parent = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-m", "gitcache", *args], cwd=root, env=env, check=False)
    if done.returncode != 0:
        raise click.ClickException(f"`gitcache {' '.join(args)}` exited with {done.returncode}")


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Walk through run, skip, parameter change and restore in a new temporary repository."""
    root = Path(tempfile.mkdtemp(prefix="gitcache-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise click.ClickException(f"{root} is not empty; give an empty or new directory")
    repo = GitRepo.init(root)
    (root / "scripts").mkdir()
    (root / "scripts" / "size.py").write_text(DEMO_SCRIPT)
    (root / "gitcache.toml").write_text(DEMO_TOML)
    (root / ".gitignore").write_text("temp/\n")
    repo.commit_all("demo workflow")
    _say(f"A fresh git repository at {root} with this gitcache.toml:")
    click.echo(DEMO_TOML)
    _say("First run: both steps run; outputs, logs and records go into git")
    _gitcache(root, "run")
    _say("Second run: nothing changed, so both steps are skipped")
    _gitcache(root, "run")
    _say("Add comments, blank lines and spaces to step `size`: its signature does not change")
    (root / "gitcache.toml").write_text(DEMO_TOML_COMMENTED)
    _gitcache(root, "run", "size")
    _say("A new parameter value changes `random`'s signature: it re-runs, and so does `size`")
    _gitcache(root, "run", "-p", "size=2000")
    _say("Status with the default size=1000: the old results are in git, and say why they differ")
    _gitcache(root, "status")
    _say("Back to size=1000: outputs are restored from git, nothing runs")
    _gitcache(root, "run")
    _say("Delete an output: it comes back from git")
    (root / "temp" / "size.txt").unlink()
    _gitcache(root, "run")
    _say("Every record, newest first (stored as commits under refs/gitcache/)")
    _gitcache(root, "log")
    click.echo(
        f"\nThe demo repository stays at {root}; try `git -C {root} show-ref | grep gitcache`."
    )


COMMANDS = [demo]

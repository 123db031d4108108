"""How much gitcache's hooks slow git down on the common path.

Times N ordinary `git commit --allow-empty` in three fresh repositories, one commit
in each in turn (so that drift of the machine hits all three alike): without hooks
(the floor), with gitcache's hooks for the default policy (post-rewrite, pre-rebase:
git runs neither on a commit), and with `rewrite = "block"`, which adds the
reference-transaction hook (git runs it twice per ref update; the shell decides, and
asks git once for the parents of the new commit). An empty `#!/bin/sh` hook is the
anchor: the least any reference-transaction hook can cost.
Goal: under 10% slower than the floor with the default policy.

    python tests/benchmarks/bench_hooks.py [N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gitcache import hooks  # noqa: E402
from gitcache.gitrepo import GitRepo  # noqa: E402


def _env(home: Path) -> dict[str, str]:
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TEMPLATE_DIR": str(home / "templates"),
        "PYTHONPATH": str(ROOT),
    }


def _repo(base: Path, name: str, env: dict[str, str], toml: str) -> Path:
    root = base / name
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, env=env, check=True)
    (root / "gitcache.toml").write_text(toml)
    return root


def _commit(root: Path, env: dict[str, str], i: int) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "-m", f"c{i}"], cwd=root, env=env, check=True
    )
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    toml = '[steps.a]\noutputs = ["out"]\nrun = "touch out"\n'
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "home" / "templates").mkdir(parents=True)
        env = _env(base / "home")
        repos = {
            "no hooks (floor)": _repo(base, "plain", env, toml),
            "empty reference-transaction hook": _repo(base, "empty", env, toml),
            "gitcache hooks, default policy": _repo(base, "default", env, toml),
            "gitcache hooks, rewrite = block": _repo(
                base, "block", env, toml + '\n[hooks]\nrewrite = "block"\n'
            ),
        }
        empty = repos["empty reference-transaction hook"] / ".git" / "hooks"
        empty.mkdir()
        (empty / "reference-transaction").write_text("#!/bin/sh\nexit 0\n")
        (empty / "reference-transaction").chmod(0o755)
        hooks.install(GitRepo.discover(repos["gitcache hooks, default policy"]), "protect")
        hooks.install(GitRepo.discover(repos["gitcache hooks, rewrite = block"]), "block")
        for root in repos.values():  # warm the page cache and git itself
            for i in range(3):
                _commit(root, env, i)
        totals = dict.fromkeys(repos, 0.0)
        for i in range(n):
            for label, root in repos.items():
                totals[label] += _commit(root, env, i)
    floor = totals["no hooks (floor)"]
    print(f"{n} x git commit --allow-empty (interleaved)")
    for label, total in totals.items():
        print(
            f"  {label:<34} {total:7.3f} s  {total / n * 1000:6.2f} ms/commit  "
            f"ratio {total / floor:.3f}"
        )


if __name__ == "__main__":
    main()

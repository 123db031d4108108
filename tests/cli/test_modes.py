"""Signature modes (SPEC §5, as in SoS): build, assert, skip, force, ignore, default."""

from __future__ import annotations

import os

from tests.helpers import Repo


def _sig_refs(repo: Repo) -> dict[str, str]:
    return {k: v for k, v in repo.refs().items() if k.startswith("refs/gitcache/sig/")}


def test_assert_passes_on_recorded_outputs_and_runs_nothing(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    before = chain.refs()
    result = chain.run("run", "-s", "assert")
    assert result.exit_code == 0, result.stderr
    assert "verified" in result.stderr and "running" not in result.stderr
    assert chain.refs() == before


def test_assert_mismatch_names_file_and_both_blobs_and_pending(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    recorded = chain.blob("out/data.txt")
    chain.write("out/data.txt", "tampered\n")
    result = chain.run("run", "-s", "assert")
    assert result.exit_code == 3
    line = f"Signature mismatch: step make: out/data.txt: recorded {recorded}, "
    line += f"worktree {chain.blob('out/data.txt')}"
    assert line in result.stderr
    assert "steps left pending: count" in result.stderr
    assert chain.read("out/data.txt") == "tampered\n"  # never restores


def test_assert_missing_output_says_missing(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    recorded = chain.blob("out/count.txt")
    (chain.root / "out/count.txt").unlink()
    result = chain.run("run", "-s", "assert")
    assert result.exit_code == 3
    assert f"out/count.txt: recorded {recorded}, worktree missing" in result.stderr
    assert not (chain.root / "out/count.txt").exists()


def test_assert_without_record_says_what_changed(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    result = chain.run("run", "-s", "assert", "-p", "size=7")
    assert result.exit_code == 3
    assert "Signature mismatch: step make: no record for signature" in result.stderr
    assert "param size changed (100 -> 7)" in result.stderr
    assert "steps left pending: count" in result.stderr


def test_assert_checks_independent_steps_after_a_mismatch(make) -> None:  # type: ignore[no-untyped-def]
    repo = make(
        {
            "gitcache.toml": '[steps.a]\noutputs = ["a.txt"]\nrun = "echo a > a.txt"\n'
            '[steps.b]\noutputs = ["b.txt"]\nrun = "echo b > b.txt"\n',
        }
    )
    assert repo.run("run").exit_code == 0
    repo.write("a.txt", "x\n")
    result = repo.run("run", "-s", "assert")
    assert result.exit_code == 3
    assert "gitcache: b: verified" in result.stderr


def test_build_records_existing_outputs_without_running(chain: Repo) -> None:
    chain.write("out/data.txt", "made by hand\n")
    chain.write("out/count.txt", "1\n")
    result = chain.run("run", "-s", "build")
    assert result.exit_code == 0, result.stderr
    assert "recorded existing outputs" in result.stderr and "running" not in result.stderr
    assert chain.read("out/data.txt") == "made by hand\n"
    assert len(_sig_refs(chain)) == 2
    again = chain.run("run")
    assert again.exit_code == 0 and "running" not in again.stderr
    assert chain.read("out/count.txt") == "1\n"


def test_build_replaces_a_record_whose_outputs_differ(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    chain.write("out/count.txt", "edited\n")
    old = _sig_refs(chain)
    assert chain.run("run", "-s", "build", "count").exit_code == 0
    new = _sig_refs(chain)
    assert set(old) == set(new) and old != new
    (chain.root / "out/count.txt").unlink()
    assert chain.run("run").exit_code == 0
    assert chain.read("out/count.txt") == "edited\n"  # restored from the built record


def test_build_with_missing_output_fails(chain: Repo) -> None:
    chain.write("out/data.txt", "x\n")
    result = chain.run("run", "-s", "build")
    assert result.exit_code == 1
    assert "declared output out/count.txt does not exist" in result.stderr
    assert not (chain.root / "out/count.txt").exists()


def test_build_dry_run_records_nothing(chain: Repo) -> None:
    chain.write("out/data.txt", "x\n")
    chain.write("out/count.txt", "1\n")
    result = chain.run("run", "-s", "build", "-n")
    assert result.exit_code == 0
    assert "would record existing outputs" in result.stderr
    assert chain.refs() == {}


def _age(repo: Repo, path: str, seconds: int) -> None:
    st = os.stat(repo.root / path)
    os.utime(repo.root / path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_skip_uses_modification_times_only(chain: Repo) -> None:
    chain.write("out/data.txt", "x\n")
    chain.write("out/count.txt", "whatever\n")
    _age(chain, "out/data.txt", 100)
    result = chain.run("run", "-s", "skip", "count")
    # make has no input, so its existing output counts as up to date; count's output is newer.
    assert result.exit_code == 0, result.stderr
    assert "running" not in result.stderr
    assert chain.read("out/count.txt") == "whatever\n"
    assert chain.refs() == {}  # no signature is read or written


def test_skip_runs_when_an_input_is_newer(chain: Repo) -> None:
    chain.write("out/data.txt", "x\ny\n")
    chain.write("out/count.txt", "whatever\n")
    _age(chain, "out/count.txt", 100)
    result = chain.run("run", "-s", "skip", "count")
    assert result.exit_code == 0, result.stderr
    assert "gitcache: count: running" in result.stderr
    assert chain.read("out/count.txt").strip() == "2"


def test_force_reruns_and_replaces_the_record(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    old = _sig_refs(chain)
    result = chain.run("run", "-s", "force")
    assert result.exit_code == 0
    assert result.stderr.count(": running") == 2
    new = _sig_refs(chain)
    assert set(new) == set(old) and all(new[k] != old[k] for k in old)


def test_ignore_runs_and_writes_no_record(chain: Repo) -> None:
    result = chain.run("run", "-s", "ignore")
    assert result.exit_code == 0
    assert chain.read("out/count.txt").strip() == "101"
    assert chain.refs() == {}


def test_default_restores_missing_outputs(chain: Repo) -> None:
    assert chain.run("run").exit_code == 0
    (chain.root / "out/data.txt").unlink()
    result = chain.run("run")
    assert result.exit_code == 0
    assert "make: restored from git" in result.stderr and "running" not in result.stderr
    assert chain.read("out/data.txt").startswith("hello")


def test_assert_over_unchanged_outputs_reads_no_file(chain: Repo) -> None:
    from gitcache.cli.output import TerminalReporter
    from gitcache.engine import Engine, RunOptions
    from gitcache.project import Project

    assert chain.run("run").exit_code == 0
    for path in ("out/data.txt", "out/count.txt"):  # out of git's racy-clean window
        _age(chain, path, 10)
    assert chain.run("run", "-s", "assert").exit_code == 0  # settles the stat cache
    project = Project.open(chain.root)
    summary = Engine(project, RunOptions(mode="assert"), TerminalReporter(quiet=True)).run([])
    assert summary.exit_code == 0
    assert project.worktree.cache.hashed == 0


def test_build_re_records_a_directory_where_one_file_changed(make) -> None:  # type: ignore[no-untyped-def]
    """Unchanged files are taken from the stat cache (not read); the record still holds
    every file's blob, and restoring it gives back the edited tree."""
    run = "mkdir -p out && for i in $(seq 40); do echo $i > out/f$i; done"
    repo = make(
        {
            "gitcache.toml": f'[steps.gen]\noutputs = ["out"]\nrun = "{run}"\n',
            ".gitignore": "out/\n",
        }
    )
    assert repo.run("run").exit_code == 0
    repo.write("out/f7", "edited by hand\n")
    result = repo.run("run", "-s", "build")
    assert result.exit_code == 0, result.stderr
    assert "recorded existing outputs" in result.stderr
    step = repo.refs()["refs/gitcache/step/gen"]
    listing = repo.git("ls-tree", "-r", f"{step}:outputs/out").splitlines()
    assert len(listing) == 40
    for line in listing:
        blob, name = line.split()[2], line.split("\t")[1]
        assert blob == repo.blob(f"out/{name}"), name
    # (the record it replaced is left dangling, for gc)
    assert repo.git("fsck", "--strict", "--no-progress", "--no-dangling") == ""
    for f in (repo.root / "out").iterdir():
        f.unlink()
    again = repo.run("run")
    assert again.exit_code == 0, again.stderr
    assert repo.read("out/f7") == "edited by hand\n" and repo.read("out/f8") == "8\n"

"""`gitcache run`: default, ignore and force modes, failures, interrupts, concurrency."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.helpers import Repo

COUNTED = """\
[params]
n = 1

[steps.a]
outputs = ["out/a.txt"]
run = "echo run >> runs.log; echo {n} > {outputs}"

[steps.b]
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
run = "echo run-b >> runs.log; cat {inputs} {inputs} > {outputs}"
"""


def runs(repo: Repo) -> int:
    path = repo.root / "runs.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def sig_refs(repo: Repo) -> dict[str, str]:
    return {k: v for k, v in repo.refs().items() if k.startswith("refs/gitcache/sig/")}


def test_first_run_records_then_skips(chain: Repo) -> None:
    first = chain.run("run")
    assert first.exit_code == 0, first.stderr
    assert chain.read("out/count.txt").strip() == "101"
    refs = chain.refs()
    assert "refs/gitcache/step/make" in refs and "refs/gitcache/step/count" in refs
    assert len(sig_refs(chain)) == 2
    second = chain.run("run")
    assert second.exit_code == 0
    assert "up to date" in second.stderr and "running" not in second.stderr
    assert chain.refs() == refs


def test_record_is_a_child_of_head_with_outputs_and_logs(chain: Repo) -> None:
    head = chain.head()
    assert chain.run("run").exit_code == 0
    record = chain.refs()["refs/gitcache/step/make"]
    assert chain.git("rev-parse", f"{record}^").strip() == head
    files = chain.git("ls-tree", "-r", "--name-only", record).split()
    assert files == ["logs/stderr", "logs/stdout", "outputs/out/data.txt", "record.json"]
    assert chain.git("rev-parse", f"{record}:outputs/out/data.txt").strip() == chain.blob(
        "out/data.txt"
    )
    chain.git("fsck", "--strict")


def test_parameter_change_reruns_only_steps_that_use_it(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    assert runs(repo) == 2
    result = repo.run("run", "-p", "n=2")
    assert result.exit_code == 0
    assert runs(repo) == 4
    assert repo.read("out/b.txt") == "2\n2\n"
    back = repo.run("run")  # n=1 again: both restored from git, nothing runs
    assert back.exit_code == 0
    assert runs(repo) == 4
    assert repo.read("out/b.txt") == "1\n1\n"
    assert "2 steps: 2 restored from git" in back.stderr


def test_missing_output_is_restored_without_running(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    (repo.root / "out/b.txt").unlink()
    result = repo.run("run")
    assert result.exit_code == 0
    assert runs(repo) == 2
    assert repo.read("out/b.txt") == "1\n1\n"


def test_comment_and_whitespace_changes_keep_the_signature(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    edited = COUNTED.replace(
        'run = "echo run >> runs.log; echo {n} > {outputs}"',
        'run = """\n# a comment\n\necho   run >> runs.log;   echo {n} > {outputs}   # why\n"""',
    )
    repo.write("gitcache.toml", edited)
    assert repo.run("run").exit_code == 0
    assert runs(repo) == 2
    repo.write("gitcache.toml", edited.replace("echo {n}", "echo x{n}"))
    assert repo.run("run").exit_code == 0
    assert runs(repo) == 4


def test_input_content_change_reruns(chain: Repo) -> None:
    repo = chain
    repo.write(
        "gitcache.toml",
        '[steps.c]\ninputs = ["data"]\noutputs = ["c.txt"]\nrun = "cat data/*.txt > c.txt"\n',
    )
    repo.write("data/1.txt", "one\n")
    repo.write("data/sub/2.txt", "two\n")
    assert repo.run("run").exit_code == 0
    ref = repo.refs()["refs/gitcache/step/c"]
    assert repo.run("run").exit_code == 0
    assert repo.refs()["refs/gitcache/step/c"] == ref
    repo.write("data/sub/2.txt", "TWO\n")
    assert repo.run("run").exit_code == 0
    assert repo.refs()["refs/gitcache/step/c"] != ref


def test_ignore_mode_runs_and_writes_nothing(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    result = repo.run("run", "-s", "ignore")
    assert result.exit_code == 0
    assert runs(repo) == 2
    assert repo.refs() == {}
    assert repo.run("run", "-s", "ignore").exit_code == 0
    assert runs(repo) == 4


def test_force_mode_reruns_and_replaces_the_record(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    before = sig_refs(repo)
    result = repo.run("run", "-s", "force", "a")
    assert result.exit_code == 0
    assert runs(repo) == 3
    after = sig_refs(repo)
    assert after.keys() == before.keys()
    assert [k for k in after if after[k] != before[k]] != []


def test_failing_step_writes_no_record_and_keeps_others(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.good]\noutputs = ["good.txt"]\nrun = "echo ok > good.txt"\n'
        '[steps.bad]\noutputs = ["bad.txt"]\nrun = "echo partial > bad.txt; echo boom >&2; exit 7"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 1
    assert "gitcache: error: step 'bad' failed: command exited with status 7" in result.stderr
    assert "boom" in result.stderr
    refs = repo.refs()
    assert "refs/gitcache/step/good" in refs
    assert "refs/gitcache/step/bad" not in refs
    assert len(sig_refs(repo)) == 1
    assert repo.run("run", "bad").exit_code == 1  # still no record: runs again


def test_output_not_produced_fails_without_record(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": '[steps.a]\noutputs = ["a.txt", "b.txt"]\nrun = "touch a.txt"\n'})
    result = repo.run("run")
    assert result.exit_code == 1
    assert "declared output b.txt was not produced" in result.stderr
    assert repo.refs() == {}


def test_failure_stops_dependents_keep_going_runs_independent(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.bad]\noutputs = ["bad.txt"]\nrun = "exit 1"\n'
        '[steps.after]\ninputs = ["bad.txt"]\noutputs = ["after.txt"]\nrun = "cp bad.txt after.txt"\n'
        '[steps.other]\noutputs = ["other.txt"]\nrun = "echo o > other.txt"\n'
    )
    repo = make({"gitcache.toml": toml})
    result = repo.run("run")
    assert result.exit_code == 1
    assert not (repo.root / "other.txt").exists()
    result = repo.run("run", "--keep-going")
    assert result.exit_code == 1
    assert (repo.root / "other.txt").exists()
    assert not (repo.root / "after.txt").exists()


def test_run_named_step_runs_what_it_needs_first(make: Callable[..., Repo]) -> None:
    toml = COUNTED + '[steps.unrelated]\noutputs = ["u.txt"]\nrun = "echo u > u.txt"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "out/\nruns.log\n"})
    result = repo.run("run", "b")
    assert result.exit_code == 0
    assert repo.read("out/b.txt") == "1\n1\n"
    assert not (repo.root / "u.txt").exists()


def test_dry_run_changes_nothing(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    result = repo.run("run", "--dry-run")
    assert result.exit_code == 0
    assert "a: would run" in result.stderr and "b: would run" in result.stderr
    assert runs(repo) == 0 and repo.refs() == {}


def test_output_streams_and_is_captured(make: Callable[..., Repo]) -> None:
    repo = make(
        {
            "gitcache.toml": '[steps.a]\noutputs = ["a"]\nrun = "echo hello; echo oops >&2; touch a"\n'
        }
    )
    result = repo.run("run")
    assert result.exit_code == 0
    assert "hello" in result.stdout and "oops" in result.stderr
    shown = repo.run("show", "a", "--stdout")
    assert shown.stdout == "hello\n"
    assert repo.run("show", "a", "--stderr").stdout == "oops\n"


def test_interpolation_quotes_paths(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.a]\ninputs = ["in dir/x y.txt"]\noutputs = ["out dir/z.txt"]\n'
        'run = "cat {inputs[0]} > {outputs}; echo {{literal}} >> {outputs}"\n'
    )
    repo = make({"gitcache.toml": toml, "in dir/x y.txt": "content\n"})
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert repo.read("out dir/z.txt") == "content\n{literal}\n"


def test_env_values_enter_the_signature(make: Callable[..., Repo], monkeypatch: object) -> None:
    import os

    toml = '[steps.a]\noutputs = ["a"]\nenv = ["GC_TEST_VAR"]\nrun = "echo $GC_TEST_VAR >> a"\n'
    repo = make({"gitcache.toml": toml})
    os.environ["GC_TEST_VAR"] = "one"
    try:
        assert repo.run("run").exit_code == 0
        assert repo.run("run").exit_code == 0
        assert repo.read("a") == "one\n"
        os.environ["GC_TEST_VAR"] = "two"
        assert repo.run("run").exit_code == 0
        # Outputs are removed before a step runs: the record holds only this run's.
        assert repo.read("a") == "two\n"
    finally:
        del os.environ["GC_TEST_VAR"]


def test_bash_shell_option(make: Callable[..., Repo]) -> None:
    toml = '[steps.a]\noutputs = ["a"]\nshell = "bash"\nrun = "echo ${{BASH_VERSION:+bash}} > a"\n'
    repo = make({"gitcache.toml": toml})
    assert repo.run("run").exit_code == 0
    assert repo.read("a") == "bash\n"


def test_ctrl_c_writes_no_record_and_leaves_no_lock(make: Callable[..., Repo]) -> None:
    toml = '[steps.slow]\noutputs = ["s.txt"]\nrun = "echo started; sleep 30; echo x > s.txt"\n'
    repo = make({"gitcache.toml": toml})
    proc = repo.spawn("run")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert repo.refs() == {}
    # No lock is left behind: the same step can run at once (quick version of it).
    repo.write("gitcache.toml", toml.replace("sleep 30; ", ""))
    t0 = time.monotonic()
    assert repo.run("run").exit_code == 0
    assert time.monotonic() - t0 < 10


def test_two_concurrent_runs_run_the_step_once(make: Callable[..., Repo]) -> None:
    toml = '[steps.a]\noutputs = ["a.txt"]\nrun = "echo x >> count.log; sleep 1; echo a > a.txt"\n'
    repo = make({"gitcache.toml": toml, ".gitignore": "count.log\na.txt\n"})
    procs = [repo.spawn("run") for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    assert repo.read("count.log") == "x\n"
    assert len(sig_refs(repo)) == 1


def test_corrupt_record_is_a_miss_with_a_warning(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run", "a").exit_code == 0
    (name,) = sig_refs(repo)
    blob = repo.git("hash-object", "-w", "--stdin", input="not json").strip()
    tree = repo.git("mktree", input=f"100644 blob {blob}\trecord.json\n").strip()
    bogus = repo.git("commit-tree", tree, "-m", "bogus").strip()
    repo.git("update-ref", name, bogus)
    result = repo.run("run", "a")
    assert result.exit_code == 0
    assert "gitcache: warning: ignoring unreadable record" in result.stderr
    assert runs(repo) == 2
    assert sig_refs(repo)[name] != bogus


def test_a_hand_edited_output_makes_run_refuse_as_restore_does(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    (repo.root / "out/a.txt").write_text("edited by hand\n")
    (repo.root / "out/b.txt").unlink()
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "gitcache: error: restore would overwrite out/a.txt, which was modified and is in no "
        "record of step 'a' (`gitcache restore --force a` discards it, `gitcache run -s build a` "
        "records it, `gitcache run -s force a` runs the step again)"
    )
    assert repo.read("out/a.txt") == "edited by hand\n"  # nothing written
    assert repo.run("restore", "a").exit_code == 2  # the same rule
    assert repo.run("restore", "a", "--force").exit_code == 0
    assert repo.run("run").exit_code == 0 and runs(repo) == 2
    assert repo.read("out/a.txt") == "1\n" and repo.read("out/b.txt") == "1\n1\n"


def test_an_output_another_record_holds_is_replaced_without_asking(
    make: Callable[..., Repo],
) -> None:
    repo = make({"gitcache.toml": COUNTED, ".gitignore": "out/\nruns.log\n"})
    assert repo.run("run").exit_code == 0
    assert repo.run("run", "-p", "n=2").exit_code == 0
    back = repo.run("run")  # out/a.txt holds n=2's content, which a record keeps
    assert back.exit_code == 0 and runs(repo) == 4
    assert repo.read("out/a.txt") == "1\n"


def test_an_input_changed_while_the_step_runs_is_not_recorded(make: Callable[..., Repo]) -> None:
    toml = (
        '[steps.s]\ninputs = ["in.txt"]\noutputs = ["out.txt"]\n'
        'run = "cat in.txt > out.txt && echo more >> in.txt"\n'
    )
    repo = make({"gitcache.toml": toml, "in.txt": "one\n"})
    result = repo.run("run")
    assert result.exit_code == 1
    assert (
        "gitcache: error: step 's' failed: input in.txt changed while the step ran; "
        "its outputs were not recorded"
    ) in result.stderr
    assert not sig_refs(repo)
    # Back to the content the signature was taken from: nothing recorded to restore.
    repo.write("in.txt", "one\n")
    assert repo.run("status").stdout.split()[1:3] == ["never", "run"]


def test_an_input_added_to_a_directory_while_the_step_runs_is_not_recorded(
    make: Callable[..., Repo],
) -> None:
    toml = (
        '[steps.s]\ninputs = ["data"]\noutputs = ["out.txt"]\n'
        'run = "cat data/* > out.txt && echo b > data/b"\n'
    )
    repo = make({"gitcache.toml": toml, "data/a": "a\n"})
    result = repo.run("run")
    assert result.exit_code == 1 and "input data/b changed while the step ran" in result.stderr
    assert not sig_refs(repo)


def test_a_background_job_holding_the_output_is_waited_for_with_one_warning(
    make: Callable[..., Repo],
) -> None:
    """The job may still be writing the step's outputs: its end is waited for (the record
    holds what it wrote), and the wait is explained once instead of looking like a hang."""
    repo = make(
        {
            "gitcache.toml": '[steps.bg]\noutputs = ["out.txt"]\n'
            'run = "echo early > out.txt; (sleep 1.5; echo late >> out.txt; echo bye) &"\n'
        }
    )
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    assert repo.read("out.txt") == "early\nlate\n"
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "gitcache: warning: step bg: its command exited, but a process it started still "
        "holds its output open; waiting for that process to end (redirect a background "
        "job's output, or `wait` for it)"
    ]
    (repo.root / "out.txt").unlink()
    restored = repo.run("run")
    assert restored.exit_code == 0 and "restored" in restored.stderr
    assert repo.read("out.txt") == "early\nlate\n"
    assert "warning" not in restored.stderr


def test_a_renamed_step_runs_once_under_its_new_name(make: Callable[..., Repo]) -> None:
    """The step's name is not in the signature, but a record belongs to one step: the
    renamed step does not take the old name's record (one warning), runs, and is then up
    to date under its new name."""
    toml = '[steps.{}]\noutputs = ["o.txt"]\nrun = "echo hi > o.txt; echo x >> runs.log"\n'
    repo = make({"gitcache.toml": toml.format("old"), ".gitignore": "o.txt\nruns.log\n"})
    assert repo.run("run").exit_code == 0 and runs(repo) == 1
    repo.write("gitcache.toml", toml.format("new"))
    renamed = repo.run("run")
    assert renamed.exit_code == 0, renamed.stderr
    warnings = [line for line in renamed.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "a renamed step runs once under its new name" in warnings[0]
    assert runs(repo) == 2
    again = repo.run("run")
    assert again.exit_code == 0 and "warning" not in again.stderr and runs(repo) == 2
    assert "new: up to date" in again.stderr

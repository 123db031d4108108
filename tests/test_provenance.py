"""Records are children of HEAD; dirty runs keep the tracked worktree as a tree."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gitcache.gitrepo import GitRepo
from gitcache.provenance import SNAPSHOT_DIR, capture, exempt
from gitcache.workflow import WorkflowFile
from tests.helpers import Repo

TOML = """\
[steps.build]
inputs = ["src/code.txt"]
outputs = ["out/result.txt"]
run = "cat {inputs} > {outputs}"
"""
FILES = {
    "gitcache.toml": TOML,
    ".gitignore": "out/\n",
    "src/code.txt": "v1\n",
    "notes/log.md": "notes\n",
    "lib/helper.sh": "echo helper\n",
}


def _record(repo: Repo, step: str = "build") -> tuple[str, dict[str, object]]:
    """(record commit, record.json) of a step's latest record."""
    commit = repo.refs()[f"refs/gitcache/step/{step}"]
    return commit, json.loads(repo.git("show", f"{commit}:record.json"))


def test_clean_run_is_a_child_of_head_without_snapshot(make: Callable[..., Repo]) -> None:
    repo = make(FILES)
    head = repo.head()
    assert repo.run("run").exit_code == 0
    commit, record = _record(repo)
    assert repo.git("rev-parse", f"{commit}^").strip() == head
    assert record["source_commit"] == head and record["dirty"] is False
    assert SNAPSHOT_DIR not in repo.git("ls-tree", "--name-only", commit).split()
    shown = repo.run("show", "build").stdout
    assert f"checkout   git switch --detach {head[:12]}" in shown


def test_dirty_run_records_files_and_a_snapshot_of_the_tracked_worktree(
    make: Callable[..., Repo],
) -> None:
    repo = make({**FILES, "old.txt": "gone soon\n"})
    repo.write("src/code.txt", "v2 uncommitted\n")
    repo.write("lib/helper.sh", "echo changed\n")
    (repo.root / "lib" / "helper.sh").chmod(0o755)
    (repo.root / "old.txt").unlink()
    repo.write("staged.txt", "new and staged\n")
    repo.git("add", "staged.txt")
    repo.write("untracked.txt", "never counts\n")
    assert repo.run("run").exit_code == 0
    commit, record = _record(repo)
    assert record["dirty"] is True
    assert record["dirty_files"] == ["lib/helper.sh", "old.txt", "src/code.txt", "staged.txt"]
    snap = f"{commit}:{SNAPSHOT_DIR}"
    listed = repo.git("ls-tree", "-r", snap)
    assert "old.txt" not in listed and "untracked.txt" not in listed and "out/" not in listed
    assert "100755 blob" in next(line for line in listed.splitlines() if "helper.sh" in line)
    assert repo.git("show", f"{snap}/src/code.txt") == "v2 uncommitted\n"
    assert repo.git("show", f"{snap}/staged.txt") == "new and staged\n"
    assert repo.git("show", f"{snap}/notes/log.md") == "notes\n"  # unchanged files too


def test_show_says_how_to_recover_a_dirty_run_and_the_command_does(
    make: Callable[..., Repo],
) -> None:
    repo = make({**FILES, "old.txt": "gone soon\n"})
    head = repo.head()
    repo.write("src/code.txt", "v2 uncommitted\n")
    (repo.root / "old.txt").unlink()
    assert repo.run("run").exit_code == 0
    commit, _ = _record(repo)
    shown = repo.run("show", "build").stdout
    line = next(x for x in shown.splitlines() if x.startswith("checkout "))
    expected = (
        f"git switch --detach {head[:12]} && "
        f"git restore --source={commit[:12]}:{SNAPSHOT_DIR} --staged --worktree :/"
    )
    assert line.split(None, 1)[1] == expected
    repo.git("stash", "-q")  # a later state of the worktree, then recover the record's
    repo.write("src/code.txt", "v3 later\n")
    repo.commit("later")
    for command in expected.split(" && "):
        repo.git(*command.split()[1:])
    assert repo.read("src/code.txt") == "v2 uncommitted\n"
    assert not (repo.root / "old.txt").exists()
    assert repo.git("rev-parse", "HEAD").strip() == head


def test_dirty_ok_directories_do_not_make_a_run_dirty(make: Callable[..., Repo]) -> None:
    repo = make({**FILES, "gitcache.toml": 'dirty_ok = ["notes/"]\n' + TOML})
    repo.write("notes/log.md", "more notes\n")
    assert repo.run("run").exit_code == 0
    commit, record = _record(repo)
    assert record["dirty"] is False and record["dirty_files"] == []
    assert SNAPSHOT_DIR not in repo.git("ls-tree", "--name-only", commit).split()


def test_require_clean_refuses_before_running_and_names_the_files(
    make: Callable[..., Repo],
) -> None:
    repo = make({**FILES, "gitcache.toml": "require_clean = true\n" + TOML})
    repo.write("src/code.txt", "v2\n")
    repo.write("lib/helper.sh", "echo changed\n")
    result = repo.run("run")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "gitcache: error: require_clean = true and tracked files are changed: "
        "lib/helper.sh, src/code.txt (commit or stash them, or list their directories "
        "in dirty_ok)"
    )
    assert not (repo.root / "out").exists() and repo.refs() == {}


def test_require_clean_allows_dirty_ok_and_untracked_changes(make: Callable[..., Repo]) -> None:
    toml = 'require_clean = true\ndirty_ok = ["notes"]\n' + TOML
    repo = make({**FILES, "gitcache.toml": toml})
    repo.write("notes/log.md", "more\n")
    repo.write("scratch.txt", "untracked\n")
    assert repo.run("run").exit_code == 0
    assert _record(repo)[1]["dirty"] is False


def test_require_clean_does_not_stop_steps_that_are_up_to_date(make: Callable[..., Repo]) -> None:
    repo = make({**FILES, "gitcache.toml": "require_clean = true\n" + TOML})
    assert repo.run("run").exit_code == 0
    repo.write("lib/helper.sh", "echo changed\n")
    result = repo.run("run")
    assert result.exit_code == 0 and "up to date" in result.stderr


def test_unborn_head_record_has_no_parent_and_show_says_so(make: Callable[..., Repo]) -> None:
    repo = make(FILES, commit=False)
    assert repo.run("run").exit_code == 0
    commit, record = _record(repo)
    assert record["source_commit"] is None
    assert repo.git("rev-list", "--parents", "-n1", commit).split() == [commit]
    shown = repo.run("show", "build").stdout
    assert "commit     (none: unborn HEAD)" in shown


def test_require_clean_refuses_with_an_unborn_head(make: Callable[..., Repo]) -> None:
    repo = make({**FILES, "gitcache.toml": "require_clean = true\n" + TOML}, commit=False)
    result = repo.run("run")
    assert result.exit_code == 2
    assert "require_clean = true, but HEAD has no commit yet" in result.stderr


def test_gc_keeps_records_their_source_and_snapshot(make: Callable[..., Repo]) -> None:
    repo = make(FILES)
    repo.write("src/code.txt", "v2 dirty\n")
    assert repo.run("run").exit_code == 0
    commit, record = _record(repo)
    repo.git("checkout", "-q", "--", ".")
    repo.git("commit", "-q", "--amend", "-m", "rewritten")  # no hooks: only the record keeps it
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    repo.git("fsck", "--no-progress")
    repo.git("cat-file", "-e", f"{record['source_commit']}^{{commit}}")
    assert repo.git("show", f"{commit}:{SNAPSHOT_DIR}/src/code.txt") == "v2 dirty\n"


@pytest.mark.parametrize(
    ("path", "dirty_ok", "expected"),
    [
        ("notes/a.md", ["notes/"], True),
        ("notes/a.md", ["notes"], True),
        ("notes", ["notes/"], True),
        ("notesx/a.md", ["notes"], False),
        ("src/notes/a.md", ["notes"], False),
        ("a/b/c", ["a/b"], True),
        ("a/bc", ["a/b"], False),
    ],
)
def test_exempt(path: str, dirty_ok: list[str], expected: bool) -> None:
    assert exempt(path, dirty_ok) is expected


def test_capture_in_process(make: Callable[..., Repo]) -> None:
    repo = make(FILES)
    git = GitRepo.discover(repo.root)
    clean = capture(git, WorkflowFile())
    assert clean.source_commit == repo.head() and not clean.dirty and clean.snapshot is None
    repo.write("src/code.txt", "v2\n")
    dirty = capture(git, WorkflowFile())
    assert dirty.dirty_files == ("src/code.txt",) and dirty.snapshot is not None
    assert dirty.tree_entries()[0].path == SNAPSHOT_DIR


def _items(repo: Repo) -> dict[str, dict[str, object]]:
    """record.json of each item of sweep `s`, by its value of `a`."""
    found = {}
    for ref, commit in repo.refs().items():
        if ref.startswith("refs/gitcache/item/s/"):
            record = json.loads(repo.git("show", f"{commit}:record.json"))
            found[str(record["item"]["a"])] = record | {"commit": commit}
    return found


def _sweep(run: str, outputs: str = "o/{a}.txt") -> str:
    return f"[steps.s]\nmatrix = {{ a = [1, 2, 3] }}\noutputs = ['{outputs}']\nrun = '{run}'\n"


def test_a_command_writing_a_tracked_output_makes_the_next_items_dirty(
    make: Callable[..., Repo],
) -> None:
    """Provenance is re-used between steps only while nothing it depends on moved: an
    item whose declared output is a tracked file changes it for the items after it."""
    run = "echo {a} > {outputs}"
    repo = make(
        {"gitcache.toml": _sweep(run, "t{a}.txt"), **{f"t{n}.txt": "old\n" for n in (1, 2, 3)}}
    )
    assert repo.run("run").exit_code == 0
    items = _items(repo)
    assert items["1"]["dirty_files"] == []
    assert items["2"]["dirty_files"] == ["t1.txt"]
    assert items["3"]["dirty_files"] == ["t1.txt", "t2.txt"]
    snapshot = repo.git("show", f"{items['3']['commit']}:{SNAPSHOT_DIR}/t2.txt")
    assert snapshot == "2\n"


def test_a_dirty_file_edited_or_a_commit_made_by_a_command_is_seen_by_the_next_item(
    make: Callable[..., Repo],
) -> None:
    # Item 1 edits a file that is already dirty; item 2 commits everything: HEAD moves.
    run = (
        "echo {a} > {outputs}; test {a} != 1 || echo edited >> code.txt; "
        "test {a} != 2 || git commit -qam c"
    )
    repo = make({"gitcache.toml": _sweep(run), ".gitignore": "o/\n", "code.txt": "v1\n"})
    (repo.root / "code.txt").write_text("v2\n")
    head = repo.head()
    assert repo.run("run").exit_code == 0
    items = _items(repo)
    assert items["1"]["dirty_files"] == items["2"]["dirty_files"] == ["code.txt"]
    assert repo.git("show", f"{items['1']['commit']}:{SNAPSHOT_DIR}/code.txt") == "v2\n"
    assert repo.git("show", f"{items['2']['commit']}:{SNAPSHOT_DIR}/code.txt") == "v2\nedited\n"
    assert items["2"]["source_commit"] == head
    assert items["3"]["source_commit"] == repo.head() != head
    assert items["3"]["dirty_files"] == []


def test_require_clean_checks_before_every_item(make: Callable[..., Repo]) -> None:
    """A command that changes tracked code stops the next item under require_clean,
    although it does not declare the file."""
    run = "echo {a} > {outputs}; echo x >> code.txt"
    toml = "require_clean = true\n" + _sweep(run)
    repo = make({"gitcache.toml": toml, ".gitignore": "o/\n", "code.txt": "v1\n"})
    result = repo.run("run")
    assert result.exit_code != 0
    assert "require_clean = true and tracked files are changed: code.txt" in result.stderr
    assert list(_items(repo)) == ["1"]

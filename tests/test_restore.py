"""Worktree.restore: every check before any write, whatever the record says."""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import StepFailed, UnsafeRecord, WorktreeConflict
from gitcache.gitrepo import MODE_FILE, MODE_LINK, GitRepo
from gitcache.record import OutputFile
from gitcache.statcache import StatCache
from gitcache.worktree import RestoreLimits, RestorePlan, Worktree
from tests.helpers import Repo


@pytest.fixture
def tree(make: Callable[..., Repo]) -> Worktree:
    repo = GitRepo.discover(make({"README": "x\n"}).root)
    return Worktree(repo, StatCache(repo.state_dir))


def out(tree: Worktree, path: str, data: bytes, mode: int = MODE_FILE) -> OutputFile:
    # Not validated (plain construction): restore must hold even if a check upstream is missed
    blob = tree.repo.write_blob(data)
    return OutputFile(path=path, blob=blob, mode=mode, size=len(data))


def refused(tree: Worktree, files: list[OutputFile], message: str) -> None:
    before = sorted(p.name for p in tree.root.iterdir())
    with pytest.raises(UnsafeRecord, match=message):
        tree.restore(files)
    assert sorted(p.name for p in tree.root.iterdir()) == before  # nothing written at all


def test_a_good_batch_is_written(tree: Worktree) -> None:
    tree.restore([out(tree, "out/a.txt", b"a"), out(tree, "out/link", b"a.txt", MODE_LINK)])
    assert (tree.root / "out/link").read_text() == "a"


@pytest.mark.parametrize("path", ["../evil", "/tmp/evil", "out/../../evil", ".git/config", ".Git"])
def test_unsafe_paths(tree: Worktree, path: str) -> None:
    refused(tree, [out(tree, "out/fine", b"x"), out(tree, path, b"x")], "refusing to restore")


def test_a_symlinked_directory_in_the_worktree_is_not_written_through(
    tree: Worktree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree.root / "out").symlink_to(outside)
    refused(tree, [out(tree, "out/data.txt", b"x")], "out is a symlink")
    assert not list(outside.iterdir())


def test_an_output_under_another_output(tree: Worktree) -> None:
    files = [out(tree, "out/d", b"..", MODE_LINK), out(tree, "out/d/evil", b"x")]
    refused(tree, files, "out/d is also an output")


def test_the_same_path_twice(tree: Worktree) -> None:
    refused(tree, [out(tree, "a", b"1"), out(tree, "a", b"2")], "named twice")


def test_symlink_chains_that_leave_the_worktree(tree: Worktree, tmp_path: Path) -> None:
    (tree.root / "escape").symlink_to(tmp_path)
    refused(tree, [out(tree, "out/link", b"../escape", MODE_LINK)], "leads out of the worktree")
    refused(tree, [out(tree, "link", b"/etc/passwd", MODE_LINK)], "is an absolute path")
    refused(tree, [out(tree, "link", b"sub/../.git/hooks", MODE_LINK)], "symlink into .git")


def test_missing_blob_and_wrong_size(tree: Worktree) -> None:
    ghost = OutputFile(path="a", blob="1" * 40, mode=MODE_FILE, size=1)
    refused(tree, [ghost], "is missing")
    liar = dataclasses.replace(out(tree, "a", b"abc"), size=2)
    refused(tree, [liar], "has 3 bytes, the record says 2")


def test_limits(tree: Worktree) -> None:
    tree.limits = RestoreLimits(max_files=2, max_bytes=10)
    refused(tree, [out(tree, f"f{n}", b"x") for n in range(3)], "restore.max_files = 2")
    refused(tree, [out(tree, "big", b"x" * 11)], "11 bytes: more than restore.max_bytes = 10")
    tree.restore([out(tree, "ok", b"x" * 10)])


# -- a declared output made exactly its record (plan_restore, apply) ---------------------


def nothing_known() -> dict[str, set[str]]:
    return {}


def test_a_directory_output_loses_its_extra_files_and_keeps_what_links_point_to(
    tree: Worktree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep\n")
    (tree.root / "out" / "sub").mkdir(parents=True)
    (tree.root / "out" / "sub" / "extra").write_text("extra\n")
    (tree.root / "out" / "linked").symlink_to(outside)  # a link among the extras
    files = [out(tree, "out/a", b"a\n")]
    plan = tree.plan_restore(files, ["out"], nothing_known, force=True)
    assert sorted(plan.remove) == ["out/linked", "out/sub/extra"]
    tree.apply(plan)
    assert sorted(os.listdir(tree.root / "out")) == ["a"]  # out/sub went with its file
    assert (outside / "keep").read_text() == "keep\n"


def test_content_no_record_holds_is_a_conflict_and_nothing_changes(tree: Worktree) -> None:
    (tree.root / "out").mkdir()
    (tree.root / "out" / "mine").write_text("mine\n")
    (tree.root / "out" / "a").write_text("edited\n")
    files = [out(tree, "out/a", b"a\n")]
    with pytest.raises(WorktreeConflict) as caught:
        tree.plan_restore(files, ["out"], nothing_known, step="s")
    assert caught.value.message == (
        "restore would overwrite out/a (and 1 more file), which was modified and is in no "
        "record of step 's'"
    )
    assert (tree.root / "out" / "mine").read_text() == "mine\n"
    held = {"out/a": {tree.repo.hash_bytes(b"edited\n")}, "out/mine": {"x"}}
    with pytest.raises(WorktreeConflict, match="would remove out/mine, which is in no record"):
        tree.plan_restore(files, ["out"], lambda: held, step="s")


def test_a_recorded_file_behind_a_symlink_the_plan_removes_is_written(
    tree: Worktree, tmp_path: Path
) -> None:
    """Files under a scope are taken from one walk of it. A recorded file that the walk
    does not list is missing, or reached through a symlink that is not in the record
    (here the scope itself): the plan removes the link and writes the file (it used to
    count it unchanged through the link, and then removed the link: the file was lost)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a").write_text("a\n")
    (tree.root / "linked").symlink_to(elsewhere)
    (tree.root / "out").mkdir()
    (tree.root / "out" / "a").write_text("a\n")
    (tree.root / "out" / "b").write_text("old\n")
    files = [
        out(tree, "linked/a", b"a\n"),
        out(tree, "out/a", b"a\n"),
        out(tree, "out/b", b"b\n"),
        out(tree, "gone/c", b"c\n"),
    ]
    plan = tree.plan_restore(files, ["linked", "out", "gone"], nothing_known, force=True)
    assert plan.unchanged == ["out/a"]
    assert [o.path for o in plan.write] == ["linked/a", "out/b", "gone/c"]
    assert plan.remove == ["linked"] and sorted(plan.discarded) == ["linked", "out/b"]
    tree.apply(plan)
    assert not (tree.root / "linked").is_symlink()
    assert (tree.root / "linked" / "a").read_text() == "a\n"
    assert (tree.root / "out" / "b").read_text() == "b\n"
    assert (tree.root / "gone" / "c").read_text() == "c\n"
    assert (elsewhere / "a").read_text() == "a\n"  # never written through the link


def test_an_output_recorded_as_an_empty_directory_is_created(tree: Worktree) -> None:
    (tree.root / "out").symlink_to("elsewhere")  # the worktree's: a link, removed first
    plan = tree.plan_restore([], ["out"], nothing_known, force=True)
    assert plan.dirs == ["out"] and plan.remove == ["out"]
    tree.apply(plan)
    assert (tree.root / "out").is_dir() and not (tree.root / "out").is_symlink()


def test_nothing_is_removed_through_a_symlinked_parent(tree: Worktree, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "out").mkdir(parents=True)
    (outside / "out" / "x").write_text("x\n")
    (tree.root / "build").symlink_to(outside)
    plan = RestorePlan(remove=["build/out/x"], scopes=["build/out"])
    with pytest.raises(UnsafeRecord, match="refusing to remove build/out/x: build is a symlink"):
        tree.apply(plan)
    assert (outside / "out" / "x").exists()


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("sub/.git/hooks/post-checkout", "symlink into .git"),
        ("../x/.GIT/config", "symlink into .git"),
        ("", "is not a path"),
        ("/abs", "is an absolute path"),
    ],
)
def test_link_targets_refused(tree: Worktree, link: str, message: str) -> None:
    refused(tree, [out(tree, "out/link", link.encode(), MODE_LINK)], message)


def test_a_link_anywhere_else_inside_the_worktree_is_fine(tree: Worktree) -> None:
    tree.restore([out(tree, "out/link", b"../README", MODE_LINK)])
    assert (tree.root / "out/link").read_text() == "x\n"


def test_clearing_outputs_never_follows_a_link(tree: Worktree, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep\n")
    (tree.root / "out").symlink_to(outside)
    (tree.root / "dir").mkdir()
    (tree.root / "dir" / "inner").symlink_to(outside)
    tree.clear_outputs(["out", "dir", "missing/x"])
    assert not (tree.root / "out").exists() and not (tree.root / "out").is_symlink()
    assert not (tree.root / "dir").exists()
    assert (outside / "keep").read_text() == "keep\n"


# -- links through links of the same batch, loops, directories in the way ----------------


def test_a_link_through_another_link_of_the_batch_is_resolved_as_the_kernel_will(
    tree: Worktree,
) -> None:
    # out/up -> .. (the root) is fine alone; out/x -> up/../evil then is <root>/../evil.
    up = out(tree, "out/up", b"..", MODE_LINK)
    refused(tree, [up, out(tree, "out/x", b"up/../evil", MODE_LINK)], "leads out of the worktree")
    nested = tree.root / "vendor" / "lib" / ".git"
    nested.mkdir(parents=True)
    lib = out(tree, "out/lib", b"../vendor/lib", MODE_LINK)
    refused(tree, [lib, out(tree, "out/h", b"lib/.git/hooks", MODE_LINK)], "into .git")
    tree.restore([up, out(tree, "out/x", b"up/README", MODE_LINK)])
    assert (tree.root / "out/x").read_text() == "x\n"


def test_a_link_chain_through_links_already_in_the_worktree(tree: Worktree) -> None:
    (tree.root / "out").mkdir()
    (tree.root / "out" / "up").symlink_to("..")  # a worktree link the batch keeps
    refused(tree, [out(tree, "out/x", b"up/../evil", MODE_LINK)], "leads out of the worktree")
    # A worktree link the batch replaces by a file is not gone through.
    (tree.root / "out" / "far").symlink_to("/")
    tree.restore([out(tree, "out/far", b"plain"), out(tree, "out/y", b"far", MODE_LINK)])
    assert (tree.root / "out/y").read_text() == "plain"


def test_a_link_loop_is_refused(tree: Worktree) -> None:
    a, b = out(tree, "out/a", b"b/x", MODE_LINK), out(tree, "out/b", b"a/x", MODE_LINK)
    refused(tree, [a, b], "symlink loop")
    refused(tree, [out(tree, "out/self", b"self/x", MODE_LINK)], "symlink loop")


def test_a_file_over_a_directory_the_plan_empties(tree: Worktree) -> None:
    # Recorded as a file, a directory (of known content) in the worktree: it goes.
    (tree.root / "out" / "x" / "deep").mkdir(parents=True)
    (tree.root / "out" / "x" / "deep" / "a").write_text("a\n")
    plan = tree.plan_restore([out(tree, "out/x", b"file\n")], ["out"], nothing_known, force=True)
    assert plan.remove == ["out/x/deep/a"]
    tree.apply(plan)
    assert (tree.root / "out" / "x").read_text() == "file\n"


@pytest.mark.parametrize("extra", ["nested/.git", "link"])
def test_a_file_over_a_directory_holding_more_is_a_conflict(tree: Worktree, extra: str) -> None:
    (tree.root / "out" / "x").mkdir(parents=True)
    (tree.root / "out" / "x" / "a").write_text("a\n")
    if extra == "link":  # a link to a directory, which no walk of the output lists
        (tree.root / "out" / "x" / "link").symlink_to("..")
    else:
        (tree.root / "out" / "x" / extra).mkdir(parents=True)
    plan = RestorePlan(write=[out(tree, "out/x", b"file\n")], remove=["out/x/a"], scopes=["out"])
    with pytest.raises(WorktreeConflict, match="cannot restore file out/x: a directory is there"):
        tree.apply(plan)
    assert (tree.root / "out" / "x" / "a").read_text() == "a\n"  # nothing removed


def test_clearing_never_removes_the_repository(tree: Worktree, tmp_path: Path) -> None:
    (tree.root / "up").symlink_to("..")  # up/<name of the root> is the root itself
    with pytest.raises(StepFailed, match=f"refusing to remove output up/{tree.root.name}"):
        tree.clear_outputs([f"up/{tree.root.name}"])
    assert (tree.root / "README").exists() and tree.repo.git_dir.is_dir()


@pytest.mark.parametrize("git_entry", ["dir", "file"])
def test_clearing_never_removes_a_repository_inside_an_output(
    tree: Worktree, git_entry: str
) -> None:
    # A nested clone (.git directory) or a submodule's or linked worktree's checkout
    # (.git file) inside a declared output: its history is in no record.
    nested = tree.root / "out" / "vendor" / "lib"
    nested.mkdir(parents=True)
    (nested / "work.txt").write_text("unpushed\n")
    if git_entry == "dir":
        (nested / ".git").mkdir()
    else:
        (nested / ".git").write_text("gitdir: ../../../elsewhere\n")
    with pytest.raises(StepFailed, match=r"it holds a git repository \(out/vendor/lib/\.git\)"):
        tree.clear_outputs(["out"])
    assert (nested / "work.txt").read_text() == "unpushed\n"
    (tree.root / "out" / "plain").mkdir()
    tree.clear_outputs(["out/plain"])  # a directory without one is cleared as before
    assert not (tree.root / "out" / "plain").exists()


def test_a_link_with_a_long_name_is_restored(tree: Worktree) -> None:
    # Its temporary name (`.gitcache-tmp-<pid>-<name>`) once passed NAME_MAX: an
    # internal error (ENAMETOOLONG) halfway through the batch.
    name = "l" * 250
    tree.restore([out(tree, "out/t", b"x"), out(tree, f"out/{name}", b"t", MODE_LINK)])
    assert os.readlink(tree.root / "out" / name) == "t"
    tree.restore([out(tree, f"out/{name}", b"../out/t", MODE_LINK)])  # over the old link
    assert os.readlink(tree.root / "out" / name) == "../out/t"
    assert sorted(p.name for p in (tree.root / "out").iterdir()) == sorted(["t", name])


def test_a_symlinked_directory_after_real_ones_in_the_batch_is_refused(
    tree: Worktree, tmp_path: Path
) -> None:
    # The way to each directory is judged once per batch: a later file's own way counts.
    outside = tmp_path / "outside"
    outside.mkdir()
    (tree.root / "out" / "a").mkdir(parents=True)
    (tree.root / "out" / "b").symlink_to(outside)
    files = [out(tree, "out/a/1", b"1"), out(tree, "out/a/2", b"2"), out(tree, "out/b/3", b"3")]
    refused(tree, files, "out/b is a symlink")
    assert not list(outside.iterdir())


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(tree: Worktree, enabled: bool) -> None:
    # apply pauses it for the restore; a caller's gc.disable() still holds after.
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        tree.restore([out(tree, "out/a.txt", b"a")])
        assert gc.isenabled() is enabled
        with pytest.raises(UnsafeRecord):
            tree.restore([out(tree, "../evil", b"x")])
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()

"""Record format 2: big outputs and logs stored as chunks, restored by streaming.

A step writes a file over the chunk threshold; its record holds the chunks at
`chunks/outputs/<path>/<index>`, record.json the whole-file blob id and the count;
`git fsck` is clean; restore writes it back chunk by chunk; hostile layouts are
refused by `store.load`, naming what is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gitcache.errors import UnsafeRecord
from gitcache.gitrepo import MODE_FILE, MODE_TREE, GitRepo, TreeEntry
from gitcache.objects.chunking import CHUNK_THRESHOLD
from gitcache.store import RecordStore
from gitcache.worktree import ChunkIds
from tests.helpers import Repo

SIZE = 40_000_000  # a few chunks

TOML = f"""\
[steps.big]
outputs = ["out"]
run = "mkdir -p out && head -c {SIZE} /dev/urandom > out/big.bin && echo small > out/small.txt"

[steps.size]
inputs = ["out/big.bin"]
outputs = ["size.txt"]
run = "wc -c < out/big.bin > size.txt"

[steps.noisy]
outputs = ["noisy.txt"]
run = "head -c {CHUNK_THRESHOLD + 5000} /dev/zero | tr '\\\\0' 'y' && echo done > noisy.txt"
"""


@pytest.fixture
def big(make: Callable[..., Repo]) -> Repo:
    repo = make({"gitcache.toml": TOML})
    result = repo.run("run", "big")
    assert result.exit_code == 0, result.stderr
    return repo


def _fsck(repo: Repo) -> None:
    done = subprocess.run(
        ["git", "fsck", "--strict", "--no-dangling"], cwd=repo.root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _record(repo: Repo) -> dict[str, object]:
    return json.loads(repo.git("show", "refs/gitcache/step/big:record.json"))  # type: ignore[no-any-return]


def test_a_big_output_is_stored_as_chunks_under_its_path(big: Repo) -> None:
    record = _record(big)
    assert record["format"] == 3
    outputs = {o["path"]: o for o in record["outputs"]}  # type: ignore[attr-defined]
    whole = outputs["out/big.bin"]
    assert whole["blob"] == big.blob("out/big.bin") and whole["size"] == SIZE
    assert whole["chunks"] >= 3
    assert "chunks" not in outputs["out/small.txt"]  # omitted when stored whole
    listing = big.git("ls-tree", "-r", "--long", "refs/gitcache/step/big").splitlines()
    paths = [line.split("\t")[1] for line in listing]
    assert "outputs/out/small.txt" in paths and "outputs/out/big.bin" not in paths
    chunk_paths = [p for p in paths if p.startswith("chunks/")]
    assert chunk_paths == [f"chunks/outputs/out/big.bin/{i:08d}" for i in range(whole["chunks"])]
    sizes = [int(line.split()[3]) for line in listing if "\tchunks/" in line]
    assert sum(sizes) == SIZE and max(sizes) <= 8 * 2**20
    _fsck(big)


def test_removed_big_output_is_restored_by_run_and_fsck_stays_clean(big: Repo) -> None:
    blob = big.blob("out/big.bin")
    os.unlink(big.root / "out/big.bin")
    result = big.run("run", "big")
    assert result.exit_code == 0, result.stderr
    assert "restored" in result.stderr
    assert big.blob("out/big.bin") == blob
    assert not [p for p in (big.root / "out").iterdir() if p.name.startswith(".gitcache-tmp")]
    assert big.run("run", "-s", "assert", "big").exit_code == 0
    _fsck(big)


def test_a_big_output_removed_on_purpose_comes_back_when_a_reader_runs(big: Repo) -> None:
    """`remove --outputs` defers the restore until a step reads the file (engine's
    deferred restore, which needs the record's chunk ids too)."""
    blob = big.blob("out/big.bin")
    assert big.run("run", "size").exit_code == 0
    assert big.run("remove", "--outputs", "big").exit_code == 0
    assert not (big.root / "out/big.bin").exists()
    assert big.run("remove", "size").exit_code == 0  # now size must run
    result = big.run("run", "size")
    assert result.exit_code == 0, result.stderr
    assert "size: restoring its inputs" in result.stderr
    assert big.blob("out/big.bin") == blob
    assert big.read("size.txt").strip() == str(SIZE)


def test_git_alone_reassembles_a_chunked_output(big: Repo) -> None:
    """The shell one-liner docs/format.md gives."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "format.md").read_text()
    line = next(x for x in doc.splitlines() if x.startswith("git ls-tree -r --name-only"))
    script = line.replace("> PATH", "> joined.bin").replace("RECORD", "refs/gitcache/step/big")
    script = script.replace("PATH", "out/big.bin")
    subprocess.run(["sh", "-c", script], cwd=big.root, check=True)
    assert big.blob("joined.bin") == big.blob("out/big.bin")


def test_big_logs_are_chunked_and_shown(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": TOML})
    result = repo.process("run", "noisy")
    assert result.returncode == 0, result.stderr
    paths = repo.git("ls-tree", "-r", "--name-only", "refs/gitcache/step/noisy").split()
    assert "logs/stdout" not in paths
    assert "chunks/logs/stdout/00000000" in paths
    shown = subprocess.run(
        [*repo_cmd(repo), "show", "noisy", "--stdout"], capture_output=True, check=True
    ).stdout
    assert shown == b"y" * (CHUNK_THRESHOLD + 5000)
    text = repo.process("show", "noisy").stdout
    assert f"stdout     {CHUNK_THRESHOLD + 5000} bytes" in text
    _fsck(repo)


def repo_cmd(repo: Repo) -> list[str]:
    import sys

    return [sys.executable, "-m", "gitcache", "-C", str(repo.root)]


# -- hostile layouts ------------------------------------------------------------------------


def _tamper(big: Repo, change: Callable[[list[TreeEntry], GitRepo], list[TreeEntry]]) -> str:
    repo = GitRepo.discover(big.root)
    commit = big.refs()["refs/gitcache/step/big"]
    entries = list(repo.walk_tree(repo.commit_tree(commit)))
    return repo.write_commit(repo.write_tree(change(entries, repo)), [], "tampered")


def _chunks(entries: list[TreeEntry]) -> list[TreeEntry]:
    return [e for e in entries if e.path.startswith("chunks/outputs/out/big.bin/")]


def _load(big: Repo, commit: str) -> None:
    RecordStore(GitRepo.discover(big.root)).load(commit)


def test_the_untampered_record_loads_with_its_chunk_ids(big: Repo) -> None:
    commit = big.refs()["refs/gitcache/step/big"]
    stored = RecordStore(GitRepo.discover(big.root)).load(commit)
    listed = big.git("ls-tree", "-r", "--format=%(objectname)", commit, "chunks/").split()
    assert stored.chunks == {"out/big.bin": tuple(listed)}


def test_a_missing_chunk_is_refused(big: Repo) -> None:
    bad = _tamper(big, lambda es, _r: [e for e in es if e != _chunks(es)[-1]])
    with pytest.raises(UnsafeRecord, match=r"chunks/outputs/out/big\.bin holds \d+ entries"):
        _load(big, bad)


def test_a_tree_in_place_of_a_chunk_is_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        first = _chunks(es)[0]
        return [e for e in es if e != first] + [TreeEntry(first.path + "/x", first.oid, MODE_FILE)]

    with pytest.raises(UnsafeRecord, match=r"00000000 is not chunk 00000000"):
        _load(big, _tamper(big, change))


def test_chunks_whose_sizes_do_not_sum_are_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        last = _chunks(es)[-1]
        other = TreeEntry(last.path, repo.write_blob(b"short"), MODE_FILE)
        return [e for e in es if e != last] + [other]

    with pytest.raises(UnsafeRecord, match=r"the chunks of outputs/out/big\.bin hold \d+ bytes"):
        _load(big, _tamper(big, change))


def test_chunk_names_out_of_order_are_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        second = _chunks(es)[1]
        renamed = TreeEntry(second.path[:-8] + "00000099", second.oid, MODE_FILE)
        return [e for e in es if e != second] + [renamed]

    with pytest.raises(UnsafeRecord, match=r"is not chunk 00000001"):
        _load(big, _tamper(big, change))


def test_chunks_of_a_path_the_record_does_not_list_are_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        first = _chunks(es)[0]
        return [*es, TreeEntry("chunks/outputs/out/extra.bin/00000000", first.oid, MODE_FILE)]

    with pytest.raises(UnsafeRecord, match=r"chunks/outputs/out/extra\.bin holds chunks of a"):
        _load(big, _tamper(big, change))


def test_a_whole_blob_beside_the_chunks_is_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        return [*es, TreeEntry("outputs/out/big.bin", _chunks(es)[0].oid, MODE_FILE)]

    with pytest.raises(UnsafeRecord, match=r"outputs/out/big\.bin is there, but record\.json"):
        _load(big, _tamper(big, change))


def test_chunks_beside_a_whole_log_are_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        return [*es, TreeEntry("chunks/logs/stdout/00000000", _chunks(es)[0].oid, MODE_FILE)]

    with pytest.raises(UnsafeRecord, match=r"chunks/logs/stdout holds chunks"):
        _load(big, _tamper(big, change))


def test_a_chunks_file_instead_of_a_directory_is_refused(big: Repo) -> None:
    def change(es: list[TreeEntry], repo: GitRepo) -> list[TreeEntry]:
        kept = [e for e in es if not e.path.startswith("chunks/")]
        return [*kept, TreeEntry("chunks", _chunks(es)[0].oid, MODE_FILE)]

    with pytest.raises(UnsafeRecord, match=r"chunks is not a directory"):
        _load(big, _tamper(big, change))


def test_restore_refuses_chunks_that_do_not_make_the_whole_blob(big: Repo) -> None:
    """Same sizes, other bytes (a chunk swapped for another of its size): the whole-file
    blob id is checked while writing; nothing is left behind, the file is not replaced."""
    repo = GitRepo.discover(big.root)
    store = RecordStore(repo)
    stored = store.load(big.refs()["refs/gitcache/step/big"])
    ids = list(stored.chunks["out/big.bin"])
    first = repo.read_blob(ids[0])
    ids[0] = repo.write_blob(bytes(reversed(first)))
    out = next(o for o in stored.record.outputs if o.path == "out/big.bin")
    before = big.blob("out/big.bin")
    from gitcache.statcache import StatCache
    from gitcache.worktree import Worktree

    worktree = Worktree(repo, StatCache(repo.worktree_state_dir))
    with pytest.raises(UnsafeRecord, match=r"refusing to restore out/big\.bin from record"):
        worktree.restore([out], chunks=ChunkIds(stored.commit, {"out/big.bin": ids}))
    assert big.blob("out/big.bin") == before
    assert not [p for p in (big.root / "out").iterdir() if p.name.startswith(".gitcache-tmp")]


def test_tree_mode_constants_are_what_git_writes() -> None:
    assert (MODE_FILE, MODE_TREE) == (0o100644, 0o040000)


PRE_RECEIVE = """\
#!/bin/sh
# As GitHub does for 100 MB, at a tenth of it: refuse any pushed blob over 10 MB.
while read old new ref; do
    git rev-list --objects "$new" --not --all |
        cut -d' ' -f1 |
        git cat-file --batch-check='%(objecttype) %(objectsize) %(objectname)' |
        while read type size name; do
            if [ "$type" = blob ] && [ "$size" -gt 10000000 ]; then
                echo "refusing blob $name of $size bytes" >&2
                exit 1
            fi
        done || exit 1
done
"""


def test_a_record_with_a_big_output_passes_a_host_that_refuses_big_blobs(
    big: Repo, tmp_path: Path
) -> None:
    from tests.remotes import bare

    remote = bare(tmp_path / "host.git")
    hook = remote / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(PRE_RECEIVE)
    hook.chmod(0o755)
    (big.root / "whole.bin").write_bytes(os.urandom(11_000_000))  # the hook works: git push
    big.git("add", "whole.bin")
    big.git("commit", "-q", "-m", "a big blob")
    refused = subprocess.run(
        ["git", "push", str(remote), "main"], cwd=big.root, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "refusing blob" in refused.stderr
    big.git("reset", "-q", "--hard", "HEAD~1")
    big.git("remote", "add", "host", str(remote))
    result = big.process("push", "host")
    assert result.returncode == 0, result.stderr
    record = big.refs()["refs/gitcache/step/big"]
    listed = git_ls_remote(remote)
    assert record in listed.values()


def git_ls_remote(remote: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "ls-remote", str(remote)], capture_output=True, text=True, check=True
    ).stdout
    return {name: oid for oid, name in (line.split("\t") for line in out.splitlines())}


def test_a_failed_object_write_is_one_line_and_records_nothing(
    make: Callable[..., Repo], tmp_path: Path
) -> None:
    """As with a full disk: the write of a chunk fails (here: a 1 MB file size limit,
    EFBIG); the run says so naming the object store, and writes no record."""
    import resource
    import sys

    from tests.helpers import gitcache_env

    source = tmp_path / "big.src"
    source.write_bytes(os.urandom(CHUNK_THRESHOLD + 1))
    repo = make(
        {"gitcache.toml": f'[steps.link]\noutputs = ["big.bin"]\nrun = "ln {source} big.bin"\n'}
    )

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    done = subprocess.run(
        [sys.executable, "-m", "gitcache", "run"],
        cwd=repo.root,
        env=gitcache_env(),
        capture_output=True,
        text=True,
        preexec_fn=limited,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("gitcache: error:")]
    assert len(errors) == 1 and "cannot write git objects in" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert repo.refs() == {}
    _fsck(repo)

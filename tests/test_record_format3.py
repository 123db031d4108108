"""Record format 3: a record of many outputs leaves their list to its tree.

record.json lists every output (SPEC), except in a record of more than
OUTPUTS_LISTED_MAX outputs: there it lists only those stored in chunks (`chunked`), and
the outputs stored whole are read from its tree (path, mode, blob id; the size from the
object's header). So that tree is checked as a hostile one could be laid out: each case
below is a crafted tree object (git itself never writes one) under a record.json that
leaves the list to the tree, and must be refused by `store.load`, naming the record,
before anything is restored.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from gitcache import outputtree
from gitcache.errors import RepositoryError, UnsafeRecord
from gitcache.gitrepo import GitRepo, TreeEntry
from gitcache.record import OUTPUTS_LISTED_MAX, RECORD_FORMAT, OutputFile
from gitcache.store import RecordStore
from tests.helpers import Repo

TOML = """\
[steps.make]
outputs = ["out"]
run = '''
mkdir -p out/sub
printf 'hello\\n' > out/a.txt
printf 'run\\n' > out/sub/run.sh && chmod +x out/sub/run.sh
ln -s a.txt out/link
'''
"""

# More outputs than record.json lists (OUTPUTS_LISTED_MAX), in two directories.
MANY = """\
[steps.many]
outputs = ["out"]
run = "mkdir -p out/a out/b && for i in $(seq 1 600); do echo $i > out/a/$i; echo $i > out/b/$i; done"
"""


@pytest.fixture
def made(make: Callable[..., Repo]) -> Repo:
    repo = make({"gitcache.toml": TOML, ".gitignore": "/out/\n"})
    result = repo.run("run")
    assert result.exit_code == 0, result.stderr
    return repo


def _commit(repo: Repo) -> str:
    return repo.refs()["refs/gitcache/step/make"]


def test_a_record_of_few_outputs_lists_them_in_record_json(made: Repo) -> None:
    commit = _commit(made)
    data = json.loads(made.git("show", f"{commit}:record.json"))
    assert RECORD_FORMAT == 3 and data["format"] == 3 and "chunked" not in data
    expected = [
        ("out/a.txt", 0o100644, made.blob("out/a.txt"), 6),
        ("out/link", 0o120000, made.git("hash-object", "--stdin", input="a.txt").strip(), 5),
        ("out/sub/run.sh", 0o100755, made.blob("out/sub/run.sh"), 4),
    ]
    assert [(o["path"], o["mode"], o["blob"], o["size"]) for o in data["outputs"]] == expected
    stored = RecordStore(GitRepo.discover(made.root)).load(commit)
    assert [(o.path, o.mode, o.blob, o.size) for o in stored.record.outputs] == expected


def test_a_record_of_many_outputs_leaves_them_to_its_tree(make: Callable[..., Repo]) -> None:
    repo = make({"gitcache.toml": MANY, ".gitignore": "/out/\n"})
    assert repo.run("run").exit_code == 0
    commit = repo.refs()["refs/gitcache/step/many"]
    data = json.loads(repo.git("show", f"{commit}:record.json"))
    assert data["format"] == 3 and "outputs" not in data and data["chunked"] == []
    assert OUTPUTS_LISTED_MAX < 1200
    stored = RecordStore(GitRepo.discover(repo.root)).load(commit)
    outputs = stored.record.outputs
    assert [o.path for o in outputs] == sorted(f"out/{d}/{i}" for d in "ab" for i in range(1, 601))
    assert all(o.blob == repo.blob(o.path) and o.mode == 0o100644 for o in outputs[:50])
    assert sum(o.size for o in outputs) == 2 * sum(len(f"{i}\n") for i in range(1, 601))
    # What `gitcache show --json` prints lists them all, as record.json does for few.
    shown = json.loads(repo.run("show", "--json", "many").stdout)
    assert [o["path"] for o in shown["outputs"]] == [o.path for o in outputs]
    shutil.rmtree(repo.root / "out/b")
    result = repo.run("run")
    assert result.exit_code == 0 and "restored" in result.stderr, result.stderr
    assert repo.read("out/b/600") == "600\n"


def test_restore_and_assert_work_from_the_tree(made: Repo) -> None:
    (made.root / "out/sub/run.sh").unlink()
    (made.root / "out/link").unlink()
    result = made.run("run")
    assert result.exit_code == 0 and "restored" in result.stderr, result.stderr
    assert (made.root / "out/link").readlink() == Path("a.txt")
    assert (made.root / "out/sub/run.sh").stat().st_mode & 0o111
    assert made.run("run", "-s", "assert").exit_code == 0


def test_rebuilding_one_file_of_many_writes_its_blob_and_the_trees_above_it(
    make: Callable[..., Repo],
) -> None:
    """-s build after one file of 1,200 was edited: the new objects are that blob, the
    trees on its path, record.json and the commit. Nothing else: not the other trees
    (they exist), not a list of every output."""
    repo = make({"gitcache.toml": MANY, ".gitignore": "/out/\n"})
    assert repo.run("run").exit_code == 0
    before = set(_objects(repo))
    (repo.root / "out/a/7").write_text("edited\n")
    result = repo.run("run", "-s", "build")
    assert result.exit_code == 0 and "recorded existing outputs" in result.stderr, result.stderr
    commit = repo.refs()["refs/gitcache/step/many"]
    new = {oid: kind for oid, kind in _objects(repo).items() if oid not in before}

    def at(path: str) -> str:
        return repo.git("rev-parse", f"{commit}:{path}").strip()

    expected = {
        commit: "commit",
        at(""): "tree",
        at("outputs"): "tree",
        at("outputs/out"): "tree",
        at("outputs/out/a"): "tree",
        at("outputs/out/a/7"): "blob",
        at("record.json"): "blob",
    }
    assert new == expected
    assert len(repo.git("cat-file", "-p", at("record.json"))) < 2000


def _objects(repo: Repo) -> dict[str, str]:
    out = repo.git("cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    return dict(line.split() for line in out.splitlines())  # type: ignore[misc]


# -- hostile trees -------------------------------------------------------------------


def _raw_tree(repo: pygit2.Repository, rows: list[tuple[bytes, bytes, str]]) -> str:
    """A tree object exactly as given (mode, name, id), as no git command writes one."""
    data = b"".join(m + b" " + n + b"\0" + bytes.fromhex(o) for m, n, o in rows)
    return str(repo.odb.write(pygit2.enums.ObjectType.TREE, data))


def _with_outputs(
    made: Repo, rows: list[tuple[bytes, bytes, str]], record_json: bytes | None = None
) -> str:
    """The good record's commit, its outputs/ tree replaced by `rows`, its record.json
    by `record_json` (by default, the good one leaving the list to the tree)."""
    if record_json is None:
        record_json = _record_json(made)
    raw = pygit2.Repository(str(made.root))
    good = raw[_commit(made)].peel(pygit2.Tree)
    top: list[tuple[bytes, bytes, str]] = []
    for entry in good:
        oid = str(entry.id)
        if entry.name == "outputs":
            oid = _raw_tree(raw, rows)
        elif entry.name == "record.json" and record_json is not None:
            oid = str(raw.create_blob(record_json))
        top.append((b"%o" % entry.filemode, entry.raw_name, oid))
    tree = _raw_tree(raw, top)
    return GitRepo.discover(made.root).write_commit(tree, [], "hostile")


def _blob(made: Repo, data: bytes) -> str:
    return str(pygit2.Repository(str(made.root)).create_blob(data))


def _refused(made: Repo, commit: str, pattern: str) -> None:
    with pytest.raises(UnsafeRecord, match=pattern):
        RecordStore(GitRepo.discover(made.root)).load(commit)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        (b"a/b", r"outputs/'a/b': a name in a tree may not hold '/'"),
        (b"..", r"outputs/\.\.: unsafe path"),
        (b".", r"outputs/\.: unsafe path"),
        (b".GIT", r"inside \.git"),
        (b"\xff", r"outputs/\\xff: path is not valid UTF-8"),
    ],
)
def test_an_entry_name_no_worktree_path_may_have_is_refused(
    made: Repo, name: bytes, pattern: str
) -> None:
    bad = _with_outputs(made, [(b"100644", name, _blob(made, b"x"))])
    _refused(made, bad, pattern)


def test_a_name_twice_in_one_tree_is_refused(made: Repo) -> None:
    blob = _blob(made, b"x")
    bad = _with_outputs(made, [(b"100644", b"a", blob), (b"100644", b"a", blob)])
    _refused(made, bad, r"outputs/a is in its tree twice")


def test_a_gitlink_is_refused(made: Repo) -> None:
    bad = _with_outputs(made, [(b"160000", b"sub", "1" * 40)])
    _refused(made, bad, r"outputs/sub has mode 160000")


def test_an_entry_naming_a_missing_object_or_a_tree_as_a_file_is_refused(made: Repo) -> None:
    missing = _with_outputs(made, [(b"100644", b"a", "2" * 40)])
    with pytest.raises(
        RepositoryError, match=r"object 2{40} \(outputs/a of record \w+\) is missing"
    ):
        RecordStore(GitRepo.discover(made.root)).load(missing)
    raw = pygit2.Repository(str(made.root))
    subtree = _raw_tree(raw, [(b"100644", b"x", _blob(made, b"x"))])
    as_file = _with_outputs(made, [(b"100644", b"a", subtree)])
    _refused(made, as_file, r"outputs/a: object \w+ is a tree, not a blob")
    as_dir = _with_outputs(made, [(b"40000", b"a", _blob(made, b"x"))])
    _refused(made, as_dir, r"a is not a directory")


def test_a_symlink_text_of_path_max_or_more_is_refused_unread(made: Repo) -> None:
    bad = _with_outputs(made, [(b"120000", b"link", _blob(made, b"x" * 4096))])
    _refused(made, bad, r"outputs/link: Value error, a symlink's text must be shorter than 4096")


def test_outputs_that_is_a_file_is_refused(made: Repo) -> None:
    raw = pygit2.Repository(str(made.root))
    good = raw[_commit(made)].peel(pygit2.Tree)
    rows = [
        (b"100644" if e.name == "outputs" else b"%o" % e.filemode, e.raw_name, str(e.id))
        for e in good
    ]
    rows = [(m, n, _blob(made, b"x") if n == b"outputs" else o) for m, n, o in rows]
    rows = [
        (m, n, _blob(made, _record_json(made)) if n == b"record.json" else o) for m, n, o in rows
    ]
    bad = GitRepo.discover(made.root).write_commit(_raw_tree(raw, rows), [], "hostile")
    _refused(made, bad, r"outputs is not a directory")


def _record_json(made: Repo, **changes: object) -> bytes:
    """The good record's record.json as a record of many outputs has it (`chunked`, no
    `outputs`), with `changes` (None: the key removed)."""
    data = json.loads(made.git("show", f"{_commit(made)}:record.json"))
    del data["outputs"]
    data["chunked"] = []
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def test_a_record_json_with_both_lists_or_neither_is_refused(made: Repo) -> None:
    """`outputs` beside `chunked` would be a second list for the tree to disagree with;
    without either, an older gitcache (and this one) would see a record of no outputs."""
    rows = [(b"100644", b"a.txt", _blob(made, b"hello\n"))]
    both = _with_outputs(made, rows, _record_json(made, outputs=[]))
    _refused(made, both, r"chunked: not allowed beside outputs")
    neither = _with_outputs(made, rows, _record_json(made, chunked=None))
    _refused(made, neither, r"outputs: Field required")
    older = _with_outputs(made, rows, _record_json(made, format=2))
    _refused(made, older, r"chunked: not allowed before format 3")
    good = RecordStore(GitRepo.discover(made.root)).load(_with_outputs(made, rows))
    assert [o.path for o in good.record.outputs] == ["a.txt"]


def test_a_record_of_a_newer_format_is_refused_with_a_hint(made: Repo) -> None:
    rows = [(b"100644", b"a.txt", _blob(made, b"hello\n"))]
    newer = _with_outputs(made, rows, _record_json(made, format=4))
    with pytest.raises(UnsafeRecord, match=r"is of format 4, newer than this gitcache") as info:
        RecordStore(GitRepo.discover(made.root)).load(newer)
    assert info.value.hint == "upgrade gitcache"


def test_a_chunked_entry_must_say_its_chunks_and_not_clash_with_the_tree(made: Repo) -> None:
    rows = [(b"40000", b"out", _raw_tree(pygit2.Repository(str(made.root)), []))]
    entry = {"path": "out/big.bin", "blob": "3" * 40, "mode": 33188, "size": 5}
    no_count = _with_outputs(made, rows, _record_json(made, chunked=[entry]))
    _refused(made, no_count, r"chunked: out/big\.bin has no chunk count")
    raw = pygit2.Repository(str(made.root))
    under = _raw_tree(raw, [(b"100644", b"x", _blob(made, b"x"))])
    clash = [(b"40000", b"out", _raw_tree(raw, [(b"40000", b"big.bin", under)]))]
    chunked = [{**entry, "chunks": 1}]
    as_dir = _with_outputs(made, clash, _record_json(made, chunked=chunked))
    _refused(made, as_dir, r"out/big\.bin is both in chunked and in its tree's outputs/")


def test_a_hostile_tree_under_the_signature_is_a_miss_and_the_step_runs(made: Repo) -> None:
    """Through the CLI: the record is ignored with a warning, the step runs, its new
    record replaces the hostile one, and nothing is written outside out/."""
    bad = _with_outputs(made, [(b"100644", b"..", _blob(made, b"pwned\n"))])
    (sig_ref,) = [r for r in made.refs() if r.startswith("refs/gitcache/sig/")]
    made.git("update-ref", sig_ref, bad)
    subprocess.run(["rm", "-rf", str(made.root / "out")], check=True)
    result = made.run("run")
    assert result.exit_code == 0, result.stderr
    assert "ignoring unreadable record" in result.stderr and "make: ran" in result.stderr
    assert made.refs()[sig_ref] != bad
    assert not (made.root / "pwned").exists() and not (made.root.parent / "pwned").exists()
    assert made.read("out/a.txt") == "hello\n"


# -- the usual tree, read in a few passes (outputtree._usual) --------------------------

VARIED = """\
[steps.many]
outputs = ["out"]
run = '''
mkdir -p out/a out/b 'out/é dir/deeper'
for i in $(seq 1 600); do echo $i > out/a/$i; echo $i > out/b/$i; done
: > out/empty
head -c 5000 /dev/zero | tr '\\\\0' y > out/three-byte-header
head -c 300000 /dev/urandom > out/big
printf 'run\\\\n' > out/x.sh && chmod +x out/x.sh
ln -s a/1 out/link
echo u > 'out/é dir/deeper/ü name.txt'
echo h > out/.hidden
echo p > 'out/a b,c=d@e~f%g+h.txt'
'''
"""


def _both_readings(root: Path) -> tuple[list[OutputFile], list[OutputFile]]:
    repo = GitRepo.discover(root)
    commit = repo.ref_target("refs/gitcache/step/many")
    assert commit is not None
    top = repo.tree_entry(repo.commit_tree(commit), "outputs")
    assert top is not None
    usual = outputtree._usual(repo, top.oid)
    assert usual is not None  # nothing unusual here
    walked = outputtree._walk(repo, top.oid, "record")
    assert usual == walked and [o.path for o in usual] == sorted(o.path for o in usual)
    return list(usual), list(walked)


def test_the_usual_reading_gives_what_the_walk_gives(make: Callable[..., Repo]) -> None:
    """Files, an executable, a symlink, an empty file, non-ASCII names, a dotfile, the
    punctuation a plain path may hold, entries whose pack headers take one, two and
    three bytes: the same OutputFiles, in gitcache's own pack and after `git repack`
    (deltas: their sizes from libgit2)."""
    repo = make({"gitcache.toml": VARIED, ".gitignore": "/out/\n"})
    assert repo.run("run").exit_code == 0
    usual, walked = _both_readings(repo.root)
    assert usual == walked
    assert {"out/x.sh", "out/link", "out/é dir/deeper/ü name.txt"} <= {o.path for o in usual}
    repo.git("repack", "-adfq", "--window=50")
    assert _both_readings(repo.root) == (usual, walked)


def _many_rows(made: Repo, count: int = 70) -> list[tuple[bytes, bytes, str]]:
    """`count` entries whose blobs are packed (sizes from the pack, not libgit2)."""
    rows = [(b"100644", b"f%03d" % i, _blob(made, b"%d\n" % i)) for i in range(count)]
    made.git("repack", "-adq")
    return rows


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ((b"100644", b"..", None), r"outputs/\.\.: unsafe path"),
        ((b"100644", b".Git. ", None), r"inside \.git"),
        ((b"100644", b"\xc3", None), r"outputs/\\xc3: path is not valid UTF-8"),
        ((b"100644", b"f001", None), r"outputs/f001 is in its tree twice"),
        ((b"160000", b"sub", "1" * 40), r"outputs/sub has mode 160000"),
        ((b"100644", b"zz", "2" * 40), r"object 2{40} \(outputs/zz of record \w+\) is missing"),
        ((b"120000", b"zz", b"x" * 4096), r"outputs/zz: Value error, a symlink's text"),
    ],
)
def test_a_defect_among_many_packed_entries_is_named_as_alone(
    made: Repo, row: tuple[bytes, bytes, str | bytes | None], pattern: str
) -> None:
    mode, name, oid = row
    if not isinstance(oid, str):
        oid = _blob(made, b"x" if oid is None else oid)
    rows = [*_many_rows(made), (mode, name, oid)]
    bad = _with_outputs(made, rows)
    with pytest.raises((UnsafeRecord, RepositoryError), match=pattern):
        RecordStore(GitRepo.discover(made.root)).load(bad)


def test_an_unusual_tree_git_would_take_is_read_by_the_walk(made: Repo) -> None:
    """Odd but readable: a mode libgit2 reads as a file's (100664), a name longer than
    NAME_MAX, a name that is not plain ASCII, an empty directory: `_usual` leaves each
    to the walk, which reads it as before."""
    repo = GitRepo.discover(made.root)
    raw = pygit2.Repository(str(made.root))
    blob = _blob(made, b"x")
    cases = {
        "odd mode": [(b"100664", b"a", blob)],
        "long name": [(b"100644", b"n" * 300, blob)],
        "empty directory": [(b"100644", b"a", blob), (b"40000", b"d", _raw_tree(raw, []))],
    }
    for rows in cases.values():
        tree = _raw_tree(raw, rows)
        assert outputtree._usual(repo, tree) is None
        assert outputtree.read_outputs(repo, tree, "r")[0] == outputtree._walk(repo, tree, "r")
    utf8 = _raw_tree(raw, [(b"100644", "é".encode(), blob)])
    assert outputtree._usual(repo, utf8) == outputtree._walk(repo, utf8, "r")
    assert [
        o.mode for o in outputtree.read_outputs(repo, _raw_tree(raw, cases["odd mode"]), "r")[0]
    ] == [0o100644]


def test_a_restore_from_the_tree_takes_the_sizes_read_and_keeps_the_limits(
    make: Callable[..., Repo], made: Repo
) -> None:
    """The sizes read from the blobs' headers with the tree (RecordStore.sizes_read) are
    not read again by the restore; the total still counts against restore.max_bytes."""
    total = 2 * sum(len(f"{i}\n") for i in range(1, 601))
    limited = MANY + f"\n[restore]\nmax_bytes = {total - 1}\n"
    repo = make({"gitcache.toml": limited, ".gitignore": "/out/\n"})
    assert repo.run("run").exit_code == 0
    store = RecordStore(GitRepo.discover(repo.root))
    stored = store.load(repo.refs()["refs/gitcache/step/many"])
    assert store.sizes_read(stored)
    small = RecordStore(GitRepo.discover(made.root))
    assert not small.sizes_read(small.load(_commit(made)))
    shutil.rmtree(repo.root / "out")
    result = repo.run("run")
    assert result.exit_code == 0
    refused = f"refusing to restore {total} bytes: more than restore.max_bytes = {total - 1}"
    assert refused in result.stderr and "running the step instead" in result.stderr


@pytest.mark.parametrize(
    "change",
    [
        "edit",
        "remove",
        "add in a new directory",
        "file to directory",
        "directory to file",
        "executable",
        "symlink",
        "remove a directory",
    ],
)
def test_build_edits_the_tree_of_the_record_it_compared_with(
    make: Callable[..., Repo], change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-s build after a few files of 1,200 changed: the outputs/ tree is the record's
    edited on the changed paths (GitRepo.edit_tree), and is exactly the tree written
    from every output, which is exactly what the worktree holds."""
    repo = make({"gitcache.toml": MANY, ".gitignore": "/out/\n"})
    assert repo.run("run").exit_code == 0
    out = repo.root / "out"
    if change == "edit":
        (out / "a/7").write_text("edited\n")
    elif change == "remove":
        (out / "b/600").unlink()
    elif change == "add in a new directory":
        (out / "c/d").mkdir(parents=True)
        (out / "c/d/new").write_text("new\n")
    elif change == "file to directory":
        (out / "a/8").unlink()
        (out / "a/8").mkdir()
        (out / "a/8/inside").write_text("inside\n")
    elif change in ("directory to file", "remove a directory"):
        assert repo.run("run", "-s", "build").exit_code == 0  # nothing changed: skipped
        (out / "c").mkdir()
        for name in ("x", "y"):
            (out / "c" / name).write_text(name)
        assert repo.run("run", "-s", "build").exit_code == 0
        shutil.rmtree(out / "c")
        if change == "directory to file":
            (out / "c").write_text("now a file\n")
    elif change == "executable":
        (out / "a/9").chmod(0o755)
    else:
        assert change == "symlink"
        (out / "a/10").unlink()
        (out / "a/10").symlink_to("../b/10")
    edits: list[str | None] = []
    real = GitRepo.edit_tree

    def edit_tree(self: GitRepo, base: str, changes: dict[str, object]) -> str | None:
        edits.append(real(self, base, changes))  # type: ignore[arg-type]
        return edits[-1]

    monkeypatch.setattr(GitRepo, "edit_tree", edit_tree)
    result = repo.run("run", "-s", "build")
    assert result.exit_code == 0 and "recorded existing outputs" in result.stderr, result.stderr
    assert len(edits) == 1 and edits[0] is not None
    git = GitRepo.discover(repo.root)
    commit = repo.refs()["refs/gitcache/step/many"]
    outputs = RecordStore(git).load(commit).record.outputs
    top = git.tree_entry(git.commit_tree(commit), "outputs")
    assert top is not None and top.oid == edits[0]
    assert top.oid == git.write_tree([TreeEntry(o.path, o.blob, o.mode) for o in outputs])
    on_disk = sorted(
        str(p.relative_to(repo.root)) for p in out.rglob("*") if p.is_symlink() or p.is_file()
    )
    assert [o.path for o in outputs] == on_disk
    for o in outputs:
        path = repo.root / o.path
        data = os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes()
        assert git.read_blob(o.blob) == data and o.size == len(data), o.path
    assert repo.run("run", "-s", "assert").exit_code == 0
    assert repo.git("fsck", "--strict", "--no-dangling").strip() == ""


def test_edit_tree_leaves_what_it_cannot_do_plainly_to_a_whole_write(made: Repo) -> None:
    repo = GitRepo.discover(made.root)
    raw = pygit2.Repository(str(made.root))
    blob = _blob(made, b"x")
    sub = _raw_tree(raw, [(b"100644", b"f", blob)])
    base = _raw_tree(raw, [(b"100644", b"a", blob), (b"40000", b"d", sub)])
    entry = TreeEntry("n", blob, 0o100644)
    assert repo.edit_tree(base, {"a/x": entry}) is None  # crosses the file a
    assert repo.edit_tree(base, {"d": entry}) is None  # d is still a directory
    assert repo.edit_tree(base, {"a": None, "d/f": None}) is None  # nothing left
    odd = _raw_tree(raw, [(b"100664", b"a", blob)])
    assert repo.edit_tree(odd, {"b": entry}) is None  # not as git writes it
    twice = _raw_tree(raw, [(b"100644", b"a", blob), (b"100644", b"a", blob)])
    assert repo.edit_tree(twice, {"b": entry}) is None
    edited = repo.edit_tree(base, {"d/f": None, "d": entry, "e/g": entry})
    assert edited == repo.write_tree(
        [
            TreeEntry("a", blob, 0o100644),
            TreeEntry("d", blob, 0o100644),
            TreeEntry("e/g", blob, 0o100644),
        ]
    )

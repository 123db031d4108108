"""The stat cache answers unchanged files without reading them, and never trusts a racy entry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gitcache.gitrepo import GitRepo
from gitcache.statcache import CACHE_FILE, StatCache, filesystem_now


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (tmp_path / "f").write_text("hello\n")
    old = 1_600_000_000_000_000_000
    os.utime(tmp_path / "f", ns=(old, old))
    first = StatCache(state)
    found = first.state(tmp_path, "f")
    assert found is not None and found.oid == GitRepo.hash_file(tmp_path / "f")
    assert first.hashed == 1
    first.save()
    second = StatCache(state)
    assert second.state(tmp_path, "f") == found
    assert second.hashed == 0


def test_racily_clean_entry_is_hashed_again(tmp_path: Path) -> None:
    """A file changed in the same mtime tick as the cache file must not be trusted."""
    state = tmp_path / "state"
    path = tmp_path / "f"
    path.write_text("aaaa\n")
    cache = StatCache(state)
    cache.state(tmp_path, "f")
    cache.save()
    cache_mtime = (state / CACHE_FILE).stat().st_mtime_ns
    # Same size, and an mtime equal to the cache file's: racily clean.
    path.write_text("bbbb\n")
    os.utime(path, ns=(cache_mtime, cache_mtime))
    st = os.lstat(path)
    fresh = StatCache(state)
    # Forge the entry to match the new stat exactly, as if the change slipped in unseen.
    fresh._rows("")["f"] = [
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        0o100644,
        "0" * 40,
    ]
    found = fresh.state(tmp_path, "f")
    assert found is not None and found.oid == GitRepo.hash_file(path)
    assert fresh.hashed == 1


def test_changed_file_is_hashed_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = tmp_path / "f"
    path.write_text("one\n")
    os.utime(path, ns=(1_600_000_000_000_000_000,) * 2)
    cache = StatCache(state)
    cache.state(tmp_path, "f")
    cache.save()
    path.write_text("two, longer\n")
    again = StatCache(state)
    found = again.state(tmp_path, "f")
    assert found is not None and found.oid == GitRepo.hash_file(path)
    assert again.hashed == 1


def test_corrupt_cache_is_a_miss(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / CACHE_FILE).write_text("{not json")
    (tmp_path / "f").write_text("x")
    cache = StatCache(state)
    found = cache.state(tmp_path, "f")
    assert found is not None and found.oid == GitRepo.hash_file(tmp_path / "f")


def test_executable_and_symlink_modes(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "x", 0o755)
    os.symlink("x", tmp_path / "link")
    cache = StatCache(tmp_path / "state")
    assert cache.state(tmp_path, "x").mode == 0o100755  # type: ignore[union-attr]
    link = cache.state(tmp_path, "link")
    assert link is not None and link.mode == 0o120000
    assert link.oid == GitRepo.hash_bytes(b"x")
    assert cache.state(tmp_path, "missing") is None


def test_a_followed_link_has_its_own_entry_beside_the_links(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("one\n")
    (tmp_path / "link").symlink_to("target")
    cache = StatCache(tmp_path / "state")
    as_link = cache.state(tmp_path, "link")
    followed = cache.state(tmp_path, "link", follow=True)
    assert as_link is not None and as_link.oid == GitRepo.hash_bytes(b"target")
    assert followed is not None and followed.oid == GitRepo.hash_file(tmp_path / "target")
    assert cache.state(tmp_path, "link") == as_link  # both remembered, neither evicted
    assert cache.hashed == 2
    (tmp_path / "target").write_text("two\n")
    again = cache.state(tmp_path, "link", follow=True)
    assert again is not None and again.oid == GitRepo.hash_file(tmp_path / "target")
    (tmp_path / "target").unlink()
    assert cache.state(tmp_path, "link", follow=True) is None  # dangling
    assert cache.state(tmp_path, "link") == as_link


def test_racy_from_hashes_a_file_not_older_than_it_again(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x\n")
    cache = StatCache(tmp_path / "state")
    first = cache.state(tmp_path, "f")
    assert cache.state(tmp_path, "f") == first and cache.hashed == 1  # stat trusted
    mtime = os.stat(tmp_path / "f").st_mtime_ns
    assert cache.state(tmp_path, "f", racy_from=mtime) == first and cache.hashed == 2
    clock = filesystem_now(tmp_path / "state")
    assert clock >= mtime and not list((tmp_path / "state").iterdir())  # no file left
    assert cache.state(tmp_path, "f", racy_from=mtime + 1) == first and cache.hashed == 2


def test_a_save_writes_anew_only_the_directories_whose_rows_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows of directories only looked at are saved as they were read: a build of
    a many-file output with one file changed does not serialize every row again."""
    old = 1_600_000_000_000_000_000
    names = [f"{d}/{f}" for d in ("a", "b", "c") for f in ("1", "2")]
    state = _cached_tree(tmp_path, names)
    (tmp_path / "b/2").write_text("changed\n")
    os.utime(tmp_path / "b/2", ns=(old, old))
    second = StatCache(state)
    found = [(name, os.lstat(tmp_path / name)) for name in names]
    assert [s is not None for s in second.states_of(tmp_path, found)] == [True] * 6
    assert second.hashed == 1
    dumped: list[object] = []
    dumps = json.dumps

    def counting(value: object, **kwargs: Any) -> str:
        dumped.append(value)
        return dumps(value, **kwargs)

    monkeypatch.setattr(json, "dumps", counting)
    second.save()
    monkeypatch.undo()
    rows_dumped = [rows for rows in dumped if isinstance(rows, dict) and "version" not in rows]
    assert [sorted(rows) for rows in rows_dumped] == [["1", "2"]]  # and the header
    third = StatCache(state)
    states = third.states_of(tmp_path, found, read=False)
    assert [s.oid if s else None for s in states] == [
        GitRepo.hash_file(tmp_path / name) for name in names
    ]


NAMES = ["a/1", "a/2", "b/\u00e9t\u00e9", "top"]


def _cached_tree(tmp_path: Path, names: list[str]) -> Path:
    """Files `names`, old enough to be trusted, looked up and saved: the state dir."""
    state = tmp_path / "state"
    old = 1_600_000_000_000_000_000
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"{name}\n")
        os.utime(tmp_path / name, ns=(old, old))
    cache = StatCache(state)
    for name in names:
        cache.state(tmp_path, name)
    cache.save()
    return state


def test_the_file_is_a_header_line_then_each_directory_s_rows(tmp_path: Path) -> None:
    """Format 3: the header gives each directory's text length; the texts follow as
    they are (no JSON string around them to unescape when the file is loaded)."""
    state, names = _cached_tree(tmp_path, NAMES), NAMES
    data = (state / CACHE_FILE).read_bytes()
    head, _, rest = data.partition(b"\n")
    header = json.loads(head)
    assert header["version"] == 3 and header["seals"] == {}
    texts = {}
    for directory, size in header["dirs"]:
        texts[directory], rest = rest[:size], rest[size:]
    assert rest == b"" and sorted(texts) == ["", "a", "b"]
    assert sorted(json.loads(texts["a"])) == ["1", "2"]
    assert list(json.loads(texts["b"])) == ["\u00e9t\u00e9"]
    again = StatCache(state)
    assert all(again.state(tmp_path, name) is not None for name in names)
    assert again.hashed == 0


@pytest.mark.parametrize("damage", ["cut", "grown", "length"])
def test_a_header_that_does_not_fit_the_texts_trusts_no_row(tmp_path: Path, damage: str) -> None:
    state, names = _cached_tree(tmp_path, NAMES), NAMES
    path = state / CACHE_FILE
    data = path.read_bytes()
    if damage == "cut":
        data = data[:-5]
    elif damage == "grown":
        data += b"{}"
    else:
        head, _, rest = data.partition(b"\n")
        header = json.loads(head)
        header["dirs"][0][1] += 1
        data = json.dumps(header).encode() + b"\n" + rest
    path.write_bytes(data)
    os.utime(path, ns=(2_000_000_000_000_000_000,) * 2)
    again = StatCache(state)
    assert all(again.state(tmp_path, name) is not None for name in names)
    assert again.hashed == len(names)  # each file read again, none trusted


def test_a_format_2_cache_is_read_then_replaced(tmp_path: Path) -> None:
    """The cache as gitcache wrote it before: its rows count, and the next save writes
    format 3 and removes it."""
    state, names = _cached_tree(tmp_path, NAMES), NAMES
    data = (state / CACHE_FILE).read_bytes()
    head, _, rest = data.partition(b"\n")
    header = json.loads(head)
    dirs = {}
    for directory, size in header["dirs"]:
        dirs[directory], rest = rest[:size].decode(), rest[size:]
    old = state / "statcache-v2.json"
    old.write_text(json.dumps({"version": 2, "dirs": dirs, "seals": {}}))
    (state / CACHE_FILE).unlink()
    os.utime(old, ns=(2_000_000_000_000_000_000,) * 2)
    cache = StatCache(state)
    assert all(cache.state(tmp_path, name) is not None for name in names)
    assert cache.hashed == 0
    (tmp_path / "a/3").write_text("new\n")
    cache.state(tmp_path, "a/3")
    cache.save()
    assert (state / CACHE_FILE).exists() and not old.exists()
    again = StatCache(state)
    assert all(again.state(tmp_path, name) is not None for name in names)
    assert again.hashed == 0

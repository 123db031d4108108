"""Many ref updates at once as one rewrite of `packed-refs`, under git's own locks.

A loose ref is a file of its own; creating a file (an inode) costs 0.15-0.3 ms on
some file systems (ext4 here), so the two loose refs of each of a thousand sweep items
cost more than their records' objects. Here a batch of updates costs one new file,
`packed-refs.gitcache-<pid>`, renamed over `packed-refs`, as `git pack-refs` does:

1. Each ref's `<ref>.lock` is taken, in name order, as a hard link to this process's
   lock template (`.git/gitcache/ref-lock-<pid>`): git and libgit2 create that name
   with O_EXCL, so a link there locks the ref against them as their own lock file
   would, without a new inode. Then `packed-refs.lock`, the same way (after the refs'
   locks, in git's order). A lock held by someone else, or anything unusual (a
   symbolic ref, a ref in the way of another's directory, no hard links here), gives
   up at once: the caller falls back to a reference transaction, which waits and
   explains. A lock that is a link to the template of a process that is gone (killed
   while it wrote a batch) is removed and taken.
2. Each ref's value is compared with what the caller expects (its loose file first,
   then packed-refs): compare-and-swap as in a transaction (`Conflict`).
3. The new `packed-refs` (every other line kept as it was, sorted by name as bytes) is
   written beside it and renamed into place; a loose file of an updated ref is then
   removed (it would hide the new packed value), and the locks are dropped.

Readers see each ref's old value or its new one.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from gitcache.scratch import process_alive

if TYPE_CHECKING:
    from gitcache.gitrepo import RefUpdate

PACKED: Final = "packed-refs"
# Reading and writing packed-refs whole for each batch grows with the refs it holds; past
# this size (some 40,000 refs) a batch's loose refs cost less (a transaction, as before).
MAX_REWRITE: Final = 4 * 2**20
TEMPLATE: Final = "ref-lock"  # `ref-lock-<pid>` in gitcache's state dir (in the git dir)
NEW_SUFFIX: Final = ".gitcache-"  # packed-refs.gitcache-<pid>: the new file being written
_HEADER: Final = b"# pack-refs with:"
_KNOWN_TRAITS: Final = (b"peeled", b"fully-peeled", b"sorted")


class Unsuitable(Exception):
    """This batch cannot be written here (the caller uses a reference transaction)."""


class InTheWay(Unsuitable):
    """A packed ref stands where a ref being written needs a directory, or packed refs lie
    under its name (git refuses both; libgit2 would write it all the same)."""

    def __init__(self, name: str, other: str) -> None:
        super().__init__(f"the ref {other} is in the way of {name}")
        self.name = name
        self.other = other


class Conflict(Exception):
    """A ref does not hold the value the caller expected."""

    def __init__(self, name: str, expected: str | None, found: str | None) -> None:
        super().__init__(name)
        self.name = name
        self.expected = expected
        self.found = found


def update_packed(
    common_dir: Path, state_dir: Path, updates: Sequence[RefUpdate], any_value: str
) -> None:
    """Apply `updates` (sets only) in one rewrite of packed-refs (see the module's
    docstring); `any_value` is the `expected` that means "whatever it holds".

    Raises Unsuitable (nothing changed: use a reference transaction instead) or
    Conflict (nothing changed)."""
    if any(not u.name.isascii() for u in updates):
        raise Unsuitable("gitcache's own ref names are ASCII")
    if any(u.new is None for u in updates):
        raise Unsuitable("deletions rewrite packed-refs anyway: leave them to libgit2")
    with contextlib.suppress(FileNotFoundError):
        if os.stat(common_dir / PACKED).st_size > MAX_REWRITE:
            raise Unsuitable("packed-refs is big: rewriting it costs more than loose refs")
    template = _template(state_dir, common_dir)
    held: list[Path] = []
    new = common_dir / f"{PACKED}{NEW_SUFFIX}{os.getpid()}"
    try:
        for update in sorted(updates, key=lambda u: u.name):
            lock = common_dir / f"{update.name}.lock"
            _link_lock(template, lock, state_dir)
            held.append(lock)
        packed_lock = common_dir / f"{PACKED}.lock"
        _link_lock(template, packed_lock, state_dir)  # after the refs' locks, as git does
        held.append(packed_lock)
        try:
            with open(new, "wb") as out:
                loose = _write_locked(common_dir, updates, any_value, out)
            os.replace(new, common_dir / PACKED)  # under packed-refs.lock
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(new)
            raise
        for path in loose:  # now hiding the new packed value; we hold its lock
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    finally:
        for lock in reversed(held):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)


def _template(state_dir: Path, common_dir: Path) -> Path:
    """This process's lock template, `ref-lock-<pid>`: a lock a killed process left is a
    link to a template whose pid is gone, so it can be told from a live one's. Made
    once per process; then the templates (no longer linked anywhere) and unfinished
    packed-refs of processes that are gone are removed."""
    path = state_dir / f"{TEMPLATE}-{os.getpid()}"
    if path.exists():
        return path
    state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    for other, _st in _gone_templates(state_dir):
        if _st.st_nlink == 1:  # no lock left behind links to it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other)
    with contextlib.suppress(OSError), os.scandir(common_dir) as listing:
        for entry in listing:
            pid = _pid_after(entry.name, f"{PACKED}{NEW_SUFFIX}")
            if pid is not None and not process_alive(pid):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    return path


def _pid_after(name: str, prefix: str) -> int | None:
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() and int(rest) != os.getpid() else None


def _gone_templates(state_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """The lock templates of processes that are gone, with their stat."""
    found = []
    with contextlib.suppress(OSError), os.scandir(state_dir) as listing:
        for entry in listing:
            pid = _pid_after(entry.name, f"{TEMPLATE}-")
            if pid is not None and not process_alive(pid):
                with contextlib.suppress(OSError):
                    found.append((Path(entry.path), entry.stat(follow_symlinks=False)))
    return found


def _left_by_the_dead(lock: Path, state_dir: Path) -> bool:
    """Whether `lock` is a lock a gitcache process that is gone left (killed while it
    wrote a batch): a link to its template. Removed if so."""
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        return True  # gone meanwhile: try again
    if st.st_nlink < 2:
        return False
    for _template_path, template in _gone_templates(state_dir):
        if (template.st_dev, template.st_ino) == (st.st_dev, st.st_ino):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            return True
    return False


def _link_lock(template: Path, lock: Path, state_dir: Path) -> None:
    for attempt in range(3):
        try:
            os.link(template, lock)
            return
        except FileExistsError:
            if attempt < 2 and _left_by_the_dead(lock, state_dir):
                continue
            raise Unsuitable(f"{lock} exists") from None
        except FileNotFoundError:
            if attempt == 2:
                raise Unsuitable(f"cannot make {lock.parent}") from None
            try:
                lock.parent.mkdir(parents=True, exist_ok=True)
            except OSError:  # a ref where a directory must go: the transaction says so
                raise Unsuitable(f"cannot make {lock.parent}") from None
        except OSError as exc:  # no hard links here, too many links, a ref in the way
            raise Unsuitable(f"cannot link {lock}: {exc.strerror}") from None


def _write_locked(
    common_dir: Path, updates: Sequence[RefUpdate], any_value: str, out: IO[bytes]
) -> list[Path]:
    """Under every lock: compare, then write the new packed-refs into `out`; the loose
    files to remove once it is in place."""
    header, entries = _read_packed(common_dir / PACKED)
    loose: list[Path] = []
    names = sorted(entries)  # refs under a name sort right after `name/`
    for update in updates:
        path = common_dir / update.name
        found = _loose_value(path)
        if found is not None:
            loose.append(path)
        else:
            entry = entries.get(update.name)
            found = None if entry is None else entry[0].split(b" ", 1)[0].decode()
        if update.expected != any_value and found != update.expected:
            raise Conflict(update.name, update.expected, found)
        above = next((p for p in _prefixes(update.name) if p in entries), None)
        if above is not None:
            raise InTheWay(update.name, above)
        at = bisect.bisect_left(names, update.name + "/")
        if at < len(names) and names[at].startswith(update.name + "/"):
            raise InTheWay(update.name, names[at])
    for update in updates:
        assert update.new is not None
        entries[update.name] = [f"{update.new} {update.name}".encode()]
    out.write(header)
    out.write(b"".join(line + b"\n" for name in sorted(entries) for line in entries[name]))
    return loose


def _loose_value(path: Path) -> str | None:
    """A loose ref's value, None when there is no loose file; Unsuitable when it is not
    a plain ref (a symbolic ref, a directory of refs, unreadable)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.ENOTDIR):
            raise Unsuitable(f"{path} is in the way") from None
        raise Unsuitable(f"cannot read {path}: {exc.strerror}") from None
    value = data.strip().decode("ascii", "replace")
    if len(value) not in (40, 64) or not all(c in "0123456789abcdef" for c in value):
        raise Unsuitable(f"{path} is not a plain ref")
    return value


def _prefixes(name: str) -> list[str]:
    """The directories a ref name lies in (`refs/a/b` -> `refs`, `refs/a`): no ref may
    be named as one of them (git refuses both a ref and refs under its name)."""
    parts = name.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def _read_packed(path: Path) -> tuple[bytes, dict[str, list[bytes]]]:
    """(header line, name -> its lines: the ref's and any `^peeled` line after it); names
    decoded as latin-1, so that they sort as their bytes do."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    traits: list[bytes] = []
    entries: dict[str, list[bytes]] = {}
    last: list[bytes] | None = None
    for number, line in enumerate(data.split(b"\n")):
        if not line:
            continue
        if number == 0 and line.startswith(_HEADER):
            traits = line[len(_HEADER) :].split()
            continue
        if line.startswith(b"^") and last is not None:
            last.append(line)
            continue
        oid, sep, name = line.partition(b" ")
        if not sep or len(oid) not in (40, 64) or line.startswith(b"#"):
            raise Unsuitable(f"{path}: a line gitcache does not read: {line[:80]!r}")
        last = [line]
        entries[name.decode("latin-1")] = last  # one character a byte: sorted as git sorts
    if not data:
        traits = list(_KNOWN_TRAITS)
    elif b"sorted" not in traits:
        traits.append(b"sorted")  # written sorted below
    ordered = [t for t in _KNOWN_TRAITS if t in traits] + [
        t for t in traits if t not in _KNOWN_TRAITS
    ]
    header = _HEADER + b"".join(b" " + t for t in ordered) + b" \n"
    return header, entries

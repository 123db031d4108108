"""Sharing records through a git remote: fetch as a union, push, look-ups on a miss.

Fetch never replaces or loses a local record. The remote's refs are listed first,
and only names of the shapes gitcache shares travel (`sig/<2>/<sig>`,
`alt/<2>/<sig>/<commit>`, `rewritten/<old>/<new>`; anything else is reported as
refused and never fetched, so a hostile name can neither become a local ref nor
block one). They are fetched into a staging namespace, `refs/gitcache/remotes/<remote>/`
(like git's remote-tracking refs: what the remote held at the last fetch), and then
unioned into the local refs in one reference transaction with compare-and-swap:

- `sig/<2>/<sig>` absent here: validated (record.json, tree, signature), then created
  with compare-and-swap (expected absent);
- `sig/<2>/<sig>` here with another record: the local one stays; the remote's goes
  to `alt/<2>/<sig>/<commit>`, where `gitcache log` lists it;
- `alt/...` refs (named by content) are created when absent;
- `rewritten/<old>/<new>` (a mapping commit whose parents are old and new) is created
  when absent, and a different local value is kept (reported).

`refs/gitcache/step/` (the record whose outputs are in this worktree) and the
staging namespace are local and never travel. See docs/sharing.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from filelock import FileLock

from gitcache import remote as transport
from gitcache.errors import RemoteError, RepositoryError, UnsafeRecord
from gitcache.gitrepo import GitRepo, RefConflict, RefUpdate
from gitcache.locks import writing_objects
from gitcache.remote import ProgressSink, Remote
from gitcache.rewrites import REWRITTEN_PREFIX, Rewrite, parse_rewritten_ref
from gitcache.store import (
    ALT_PREFIX,
    REF_ROOT,
    SIG_PREFIX,
    STEP_PREFIX,
    RecordStore,
    StoredRecord,
    alt_ref,
    parse_alt_ref,
    parse_sig_ref,
    sig_ref,
)
from gitcache.trust import check_signature, check_step

STAGE_PREFIX: Final = REF_ROOT + "remotes/"
LOCAL_ONLY: Final = (STEP_PREFIX, STAGE_PREFIX)
# The namespaces that travel, and the one shape of name each may hold.
SHARED: Final = {
    SIG_PREFIX: "refs/gitcache/sig/<2 hex>/<64 hex signature starting with them>",
    ALT_PREFIX: "refs/gitcache/alt/<2 hex>/<signature>/<record commit>",
    REWRITTEN_PREFIX: "refs/gitcache/rewritten/<old commit>/<new commit>",
}
_MERGE_ATTEMPTS: Final = 5


def shape_problem(name: str) -> str | None:
    """Why a ref under refs/gitcache/ is not one gitcache shares (None: it is).

    Only fixed-depth names of three namespaces are shared, so no shared name is a
    prefix directory of another: fetching them can never meet a directory/file
    conflict, and none can shadow a local ref (`refs/gitcache/step`, `.../remotes`).
    """
    if parse_sig_ref(name) or parse_alt_ref(name) or parse_rewritten_ref(name):
        return None
    for prefix, shape in SHARED.items():
        if name.startswith(prefix):
            return f"not a valid gitcache ref name (expected {shape})"
    return "not a valid gitcache ref name (only sig/, alt/ and rewritten/ refs are shared)"


@dataclass
class FetchReport:
    remote: str
    added: list[str] = field(default_factory=list)  # signatures whose record is new here
    alternates: list[str] = field(default_factory=list)  # remote's other record kept as alt
    others: list[str] = field(default_factory=list)  # rewrite mappings created here
    kept_local: list[str] = field(default_factory=list)  # mappings that differ: ours stays
    refused: list[tuple[str, str]] = field(default_factory=list)  # (remote ref, why)
    unchanged: int = 0


@dataclass
class PushReport:
    remote: str
    created: list[str] = field(default_factory=list)  # refs the remote did not have
    up_to_date: int = 0
    diverged: list[str] = field(default_factory=list)  # signatures: ours went to alt there
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (ref, git's reason)


# -- fetch ---------------------------------------------------------------------------


def fetch(store: RecordStore, remote: Remote, progress: ProgressSink | None = None) -> FetchReport:
    """Bring every shareable ref of the remote, as a union with the local ones.

    Names of another shape are reported as refused, never fetched.
    """
    repo = store.repo
    stage = _stage(remote)
    wanted: dict[str, str] = {}  # shared name -> object id, as the remote lists them
    refused: list[tuple[str, str]] = []
    for name, oid in transport.list_refs(repo, remote, REF_ROOT):
        why = shape_problem(name)
        if why is None:
            wanted[name] = oid
        elif not name.startswith(LOCAL_ONLY):  # another clone's step/ refs: not for us
            refused.append((name, why))
    with _stage_lock(repo, remote):
        staged = dict(repo.refs(stage))
        # The staging namespace holds only shared names the remote still lists: anything
        # else (gone from the remote, or left by an older gitcache) goes before the fetch,
        # so nothing staged can block what the fetch writes.
        stale = [n for n in staged if REF_ROOT + n.removeprefix(stage) not in wanted]
        if stale:
            repo.update_refs([RefUpdate(n, None) for n in stale], "gitcache: prune")
        if any(staged.get(stage + n.removeprefix(REF_ROOT)) != oid for n, oid in wanted.items()):
            refspecs = [f"+{prefix}*:{stage}{prefix.removeprefix(REF_ROOT)}*" for prefix in SHARED]
            # A refused name inside a shared namespace (`sig/ab`) would match a pattern.
            refspecs += [f"^{name}" for name, _why in refused if name.startswith(tuple(SHARED))]
            transport.fetch(repo, remote, refspecs, progress)
        # Every staged ref is planned, not only those this fetch changed: a fetch
        # interrupted before its merge is completed by the next one.
        report = _merge(store, remote, list(repo.refs(stage)))
    report.refused[:0] = refused
    return report


def fetch_signature(store: RecordStore, remote: Remote, signature: str) -> FetchReport:
    """Ask the remote for one signature's ref only (one round trip).

    A glob refspec is used because a missing exact ref is an error for git, while a
    pattern that matches nothing is not; with protocol v2 the server advertises only
    refs under the pattern's prefix. Names below the signature's (`<sig>/x`, which
    would block staging `<sig>`) are excluded; longer ones (`<sig>x`) are staged but
    never used, and the next `fetch` drops them.
    """
    repo = store.repo
    rel = sig_ref(signature).removeprefix(REF_ROOT)
    staged = _stage(remote) + rel
    refspecs = [f"+{REF_ROOT}{rel}*:{staged}*", f"^{REF_ROOT}{rel}/*"]
    with _stage_lock(repo, remote):
        if repo.ref_target(staged) is not None:  # stale: after the fetch it means "remote has it"
            repo.update_refs([RefUpdate(staged, None)], "gitcache: look-up")
        try:
            transport.fetch(repo, remote, refspecs, None)
        except RemoteError:
            # Perhaps a name left below ours by an older gitcache blocks it: clear, retry.
            if not _clear_staged(repo, staged):
                raise
            transport.fetch(repo, remote, refspecs, None)
        target = repo.ref_target(staged)
        return _merge(store, remote, [] if target is None else [(staged, target)])


def _clear_staged(repo: GitRepo, prefix: str) -> bool:
    """Delete staged refs whose names start with `prefix`; whether there were any."""
    found = [name for name, _target in repo.refs(prefix)]
    if found:
        repo.update_refs([RefUpdate(name, None) for name in found], "gitcache: look-up")
    return bool(found)


def _stage(remote: Remote) -> str:
    return f"{STAGE_PREFIX}{remote.stage}/"


@contextmanager
def _stage_lock(repo: GitRepo, remote: Remote) -> Iterator[None]:
    # One process at a time uses a remote's staging namespace (flock: released on crash).
    path = repo.state_dir / "locks" / f"remote-{remote.stage}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    # And no `gitcache gc --prune` while git fetch has written a pack whose refs are
    # not there yet, or while staged records are merged (locks.py).
    with FileLock(str(path), thread_local=False), writing_objects(repo.state_dir, repo.on_wait):
        yield


def _merge(store: RecordStore, remote: Remote, staged: list[tuple[str, str]]) -> FetchReport:
    """Union the staged refs into the local ones, in one transaction."""
    stage = _stage(remote)
    for _attempt in range(_MERGE_ATTEMPTS):
        report = FetchReport(remote.name)
        planned: dict[str, str] = {}
        # Signature refs first, so that an alt ref naming the same record is redundant.
        for name, target in sorted(staged, key=lambda r: not r[0].startswith(stage + "sig/")):
            _plan_ref(store, name.removeprefix(stage), target, report, planned)
        updates = [RefUpdate(name, new, expected=None) for name, new in planned.items()]
        if not updates:
            return report
        try:
            store.repo.update_refs(updates, f"gitcache: fetch {remote.name}")
            return report
        except RefConflict:
            continue  # a local run recorded one of these meanwhile: plan again
    raise RepositoryError("refs under refs/gitcache/ keep changing; fetch again")


def _plan_ref(
    store: RecordStore, rel: str, target: str, report: FetchReport, planned: dict[str, str]
) -> None:
    """Plan the local ref one remote ref calls for (into `planned`), noted in report."""

    def local(name: str) -> str | None:
        return planned.get(name) or store.repo.ref_target(name)

    def create(
        name: str, signature: str | None, into: list[str], beside: str | None = None
    ) -> None:
        if signature is not None and not _admit(store, rel, target, signature, report, beside):
            return
        planned[name] = target
        into.append(signature or name)

    name = REF_ROOT + rel
    signature = parse_sig_ref(name)
    alt = parse_alt_ref(name)
    rewrite = parse_rewritten_ref(name)
    if signature is not None:
        mine = local(sig_ref(signature))
        if mine is None:
            create(sig_ref(signature), signature, report.added)
        elif target in (mine, local(alt_ref(signature, target))):
            report.unchanged += 1
        else:
            create(alt_ref(signature, target), signature, report.alternates, mine)
    elif alt is not None:
        signature, commit = alt
        if commit != target:
            report.refused.append((name, f"points at {target[:12]}, not {commit[:12]}"))
        elif target in (local(sig_ref(signature)), local(alt_ref(signature, commit))):
            report.unchanged += 1
        else:
            create(
                alt_ref(signature, commit),
                signature,
                report.alternates,
                local(sig_ref(signature)),
            )
    elif rewrite is None:
        report.refused.append((name, shape_problem(name) or "not a valid gitcache ref name"))
    elif not _is_mapping(store.repo, target, rewrite):
        report.refused.append(
            (
                name,
                f"{target[:12]} is not a mapping commit of {rewrite.old[:12]} -> "
                f"{rewrite.new[:12]} (parents old, new)",
            )
        )
    elif (mine := local(name)) == target:
        report.unchanged += 1
    elif mine is not None:
        report.kept_local.append(name)
    else:
        create(name, None, report.others)


def _is_mapping(repo: GitRepo, commit: str, rewrite: Rewrite) -> bool:
    """The commit a rewritten/<old>/<new> ref names has exactly old and new as parents."""
    try:
        return repo.commit_parents(commit) == [rewrite.old, rewrite.new]
    except RepositoryError:
        return False


def _admit(
    store: RecordStore,
    rel: str,
    commit: str,
    signature: str,
    report: FetchReport,
    beside: str | None = None,
) -> bool:
    """Validate a fetched record before any local ref points at it; `beside`: the
    signature's record here, whose step the fetched one must name too (the step is not
    part of the signature: the record here says which step the signature is)."""
    try:
        stored = store.load(commit)
        check_signature(stored, signature)
        here = None if beside is None else store.load_or_none(beside)
        if here is not None:
            check_step(stored, here.record.step, signature)
    except (UnsafeRecord, RepositoryError) as exc:
        report.refused.append((REF_ROOT + rel, exc.message))
        return False
    store.remember(stored)  # validated anyway: `gitcache log` need not read it again
    return True


# -- push ------------------------------------------------------------------------------


def refs_of_steps(store: RecordStore, steps: Sequence[str]) -> list[str]:
    """The sig and alt refs of every record of these steps."""
    wanted = set(steps)
    names = []
    for prefix in (SIG_PREFIX, ALT_PREFIX):
        for name, commit in store.repo.refs(prefix):
            if shape_problem(name) is not None:
                continue  # not shared (e.g. brought in by a plain `git fetch`)
            try:
                step = store.load(commit).record.step
            except (UnsafeRecord, RepositoryError):
                continue
            if step in wanted:
                names.append(name)
    return names


def push(
    store: RecordStore,
    remote: Remote,
    refs: Sequence[str] | None = None,
    progress: ProgressSink | None = None,
) -> PushReport:
    """Push `refs` (default: every shareable ref under refs/gitcache/), never forcing.

    A signature whose ref the remote holds with another record is not an error: our
    record goes to the remote's alt namespace instead, and both are kept there.
    """
    repo = store.repo
    if refs is None:
        shared = {prefix: False for prefix in SHARED}
        refspecs = []
        for name, _target in repo.refs(REF_ROOT):
            prefix = next((p for p in SHARED if name.startswith(p)), None)
            if prefix is not None and shape_problem(name) is None:
                shared[prefix] = True
            elif prefix is not None:  # e.g. from a plain `git fetch`: never spread it
                refspecs.append(f"^{name}")
        # One pattern per namespace that has something to send (none: nothing to push).
        patterns = [f"{prefix}*:{prefix}*" for prefix, found in shared.items() if found]
        refspecs = [*patterns, *refspecs] if patterns else []
    else:
        refspecs = [f"{name}:{name}" for name in refs]
    report = PushReport(remote.name)
    if not refspecs:
        return report
    alternates = []
    for line in transport.push(repo, remote, refspecs, progress):
        signature = parse_sig_ref(line.dst)
        commit = repo.ref_target(line.dst)
        if line.diverged and signature is not None and commit is not None:
            report.diverged.append(signature)
            alternates.append(f"{commit}:{alt_ref(signature, commit)}")
        else:
            _note(report, line)
    if alternates:
        for line in transport.push(repo, remote, alternates, progress):
            if line.rejected:  # the others are counted as diverged already
                report.rejected.append((line.dst, line.summary))
    return report


def _note(report: PushReport, line: transport.PushedRef) -> None:
    if line.rejected:
        report.rejected.append((line.dst, line.summary))
    elif line.flag == "=":
        report.up_to_date += 1
    else:
        report.created.append(line.dst)


# -- look-ups on a miss ----------------------------------------------------------------


class RemoteLookup:
    """The engine's `on_miss`: ask a remote for a signature's record before running.

    A remote that cannot be reached is reported once; the run goes on without it.
    """

    def __init__(self, store: RecordStore, remote: Remote, warn: Callable[[str], None]) -> None:
        self.store = store
        self.remote = remote
        self.warn = warn
        self.reachable = True

    def __call__(self, signature: str) -> bool:
        if not self.reachable:
            return False
        try:
            report = fetch_signature(self.store, self.remote, signature)
        except RemoteError as exc:
            self.reachable = False
            self.warn(f"{exc.message}; going on without the remote")
            return False
        for ref, why in report.refused:
            self.warn(f"refused record {ref} from {self.remote.name}: {why}")
        return bool(report.added)


def records_written(results: Sequence[StoredRecord]) -> list[str]:
    """The sig refs of records (for pushing just what a run recorded)."""
    return sorted({sig_ref(stored.record.signature) for stored in results})

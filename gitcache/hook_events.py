"""What `gitcache hook NAME` does: the slow path of the hooks, behind the shell shim.

The shim (gitcache/hook_templates/hook) calls in only for a possible rewrite:
- `reference-transaction prepared` with the amend-shaped "old new" pairs on stdin:
  under `rewrite = "block"`, refuse when an old commit has records;
- `pre-rebase UPSTREAM [BRANCH]`: the same for the commits the rebase would rewrite;
- `post-rewrite amend|rebase` with "old new" lines: store the mapping (rewrites.py),
  unless the policy is "allow". Amend events during a rebase are ignored: the final
  rebase event carries the whole mapping (as git-branchless does).

Each returns a HookOutcome (exit status and messages); nothing here prints.
A configuration gitcache cannot read fails open with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from gitcache.errors import ConfigError
from gitcache.gitrepo import GitRepo
from gitcache.record import is_oid
from gitcache.rewrites import CommitRecords, Kind, Rewrite, record_rewrites
from gitcache.store import RecordStore
from gitcache.workflow import WORKFLOW_FILE, HooksSpec, load_workflow

ALLOW_ENV: Final = "GITCACHE_ALLOW_REWRITE"
_LISTED: Final = 5


@dataclass
class HookOutcome:
    status: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def policy(repo: GitRepo, warnings: list[str]) -> HooksSpec:
    """The [hooks] table of the root gitcache.toml; defaults when absent or unreadable."""
    path = repo.root / WORKFLOW_FILE
    if not path.exists():
        return HooksSpec()
    try:
        return load_workflow(path, repo.root).config.hooks
    except ConfigError as exc:
        warnings.append(f"{exc.message}; using the default rewrite policy")
        return HooksSpec()


def rebase_in_progress(repo: GitRepo) -> bool:
    return any((repo.git_dir / d).is_dir() for d in ("rebase-merge", "rebase-apply"))


def parse_pairs(text: str) -> list[Rewrite]:
    """`old new [extra]` lines as git gives them to post-rewrite; others are skipped."""
    pairs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and is_oid(parts[0]) and is_oid(parts[1]):
            pairs.append(Rewrite(parts[0], parts[1]))
    return pairs


# -- refusing (rewrite = "block") ----------------------------------------------------


def _blocking(repo: GitRepo, env: Mapping[str, str], outcome: HookOutcome) -> bool:
    return env.get(ALLOW_ENV) != "1" and policy(repo, outcome.warnings).rewrite == "block"


def _refuse(repo: GitRepo, action: str, commits: Sequence[str], outcome: HookOutcome) -> None:
    """Refuse if any of the commits has records, naming the commits and the records."""
    index = CommitRecords(repo)
    store = RecordStore(repo)
    named = []
    for commit in commits:
        records = index.records(commit)
        if not records:
            continue
        shown = []
        for record in records[:_LISTED]:
            stored = store.load(record)
            shown.append(f"{stored.record.step} {stored.short}")
        more = f" and {len(records) - _LISTED} more" if len(records) > _LISTED else ""
        named.append(f"{commit[:12]} ({', '.join(shown)}{more})")
    if named:
        outcome.status = 1
        outcome.errors.append(
            f'refusing to {action}: rewrite = "block" in {WORKFLOW_FILE} and these commits '
            f"have records: {'; '.join(named)} (set {ALLOW_ENV}=1 to rewrite anyway)"
        )


def reference_transaction(
    repo: GitRepo, state: str, stdin: str, env: Mapping[str, str]
) -> HookOutcome:
    """Refuse an amend of a commit with records (the shim sends amend-shaped pairs only)."""
    outcome = HookOutcome()
    if state != "prepared" or not _blocking(repo, env, outcome) or rebase_in_progress(repo):
        return outcome  # a rebase was already let through by pre-rebase
    amended = [
        p.old
        for p in parse_pairs(stdin)
        if p.old != p.new and repo.commit_parents(p.old) == repo.commit_parents(p.new)
    ]
    _refuse(repo, "amend", list(dict.fromkeys(amended)), outcome)
    return outcome


def pre_rebase(
    repo: GitRepo, upstream: str | None, branch: str | None, env: Mapping[str, str]
) -> HookOutcome:
    """Refuse a rebase that would rewrite commits with records."""
    outcome = HookOutcome()
    if not _blocking(repo, env, outcome):
        return outcome
    tip = repo.resolve_commit(branch) if branch else repo.head_commit()
    if tip is None:
        return outcome
    hide = [] if upstream in (None, "--root") else [repo.resolve_commit(upstream or "")]
    _refuse(repo, "rebase", repo.commits_between(tip, hide), outcome)
    return outcome


# -- recording (rewrite = "protect") -------------------------------------------------


def post_rewrite(repo: GitRepo, kind: str, stdin: str) -> HookOutcome:
    outcome = HookOutcome()
    if kind not in ("amend", "rebase"):
        outcome.warnings.append(f"post-rewrite: unknown command {kind!r}; nothing recorded")
        return outcome
    if kind == "amend" and rebase_in_progress(repo):
        return outcome
    if policy(repo, outcome.warnings).rewrite == "allow":
        return outcome
    pairs = parse_pairs(stdin) or parse_pairs(_rewritten_list(repo, kind))
    event: Kind = "amend" if kind == "amend" else "rebase"
    stored = record_rewrites(repo, pairs, event)
    for pair in stored:
        outcome.notes.append(f"records of {pair.old[:12]} carried over to {pair.new[:12]} ({kind})")
    return outcome


def _rewritten_list(repo: GitRepo, kind: str) -> str:
    """The pairs when stdin has none (the pre-commit framework does not pass it on)."""
    if kind == "rebase":
        path = repo.git_dir / "rebase-merge" / "rewritten-list"
        return path.read_text() if path.exists() else ""
    amend = repo.last_amend()
    return "" if amend is None else f"{amend[0]} {amend[1]}\n"

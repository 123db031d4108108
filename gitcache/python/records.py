"""`gitcache.records(...)`: the records of Python steps, from git (SumatraTask's RSView).

Backed by the record index that `gitcache log` uses (`RecordStore.summaries()`):
listing and filtering 10,000 records reads no git object; only `.load()` and
`.task()` open the one record they act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitcache.errors import RecordNotFound
from gitcache.history import LogQuery, newest_first
from gitcache.python import results
from gitcache.python.session import Session, session_for
from gitcache.recordindex import RecordSummary
from gitcache.timespec import parse_when


@dataclass(frozen=True)
class RecordView:
    """One record, as listed: step, signature, commit, start time, duration, params."""

    summary: RecordSummary
    step_function: Any = None  # the StepFunction, when records() was given one

    def __getattr__(self, name: str) -> Any:
        return getattr(self.summary, name)

    def __repr__(self) -> str:
        s = self.summary
        return f"<gitcache record {s.step} {s.short} {s.started_at}>"

    def _session(self) -> Session:
        return session_for(Path.cwd())

    def load(self, trust: bool = False) -> Any:
        """The recorded result, validated against the step's return type when the step
        is known; a pickle only from this clone, or with `trust=True`."""
        session = self._session()
        with session.lock:
            stored = session.store.load(self.summary.commit)
            python = stored.record.python
            if python is None:
                raise RecordNotFound(f"record {self.summary.commit[:12]} is not a Python step's")
            trusted = trust or stored.commit in results.trusted_pickles(session.state_dir)
            where = f"record {stored.commit[:12]}"
            read = results.commit_reader(session.repo, stored.commit, where)
            value, _ = results.load(read, python.result, trusted, where)
        step = self.step_function or self._import_step(python.module, python.function)
        return value if step is None else step.signer.check_result(value)

    def task(self) -> Any:
        """The call that made this record, as a Task of its step (re-validated)."""
        from gitcache.python.tasks import Task, load_arguments

        session = self._session()
        with session.lock:
            stored = session.store.load(self.summary.commit)
        python = stored.record.python
        if python is None:
            raise RecordNotFound(f"record {stored.commit[:12]} is not a Python step's")
        step = self.step_function or self._import_step(python.module, python.function)
        if step is None:
            raise RecordNotFound(
                f"record {stored.commit[:12]}: cannot import step {python.module}:{python.function}"
            )
        values = load_arguments(
            dict(python.arguments), f"record {stored.commit[:12]}", from_record=True
        )
        return Task(step, step.signer.bind((), values))

    def _import_step(self, module: str, function: str) -> Any:
        from gitcache.python.errors import ArgumentError
        from gitcache.python.tasks import import_step

        where, _, qualname = function.rpartition(":")
        file = None if where.startswith("<") else where
        try:
            return import_step(
                module, qualname, file, f"record {self.summary.commit[:12]}", from_record=True
            )
        except ArgumentError:
            return None


class RecordList(list[RecordView]):
    """Records, newest first."""

    def latest(self) -> RecordView:
        if not self:
            raise RecordNotFound("no record matches")
        return self[0]

    def filter(self, **params: Any) -> RecordList:
        """Those whose arguments equal the given values (fingerprints compare equal)."""
        return RecordList(r for r in self if _matches(r.summary, params))

    def df(self) -> Any:
        """A pandas DataFrame: one row per record, a column per argument."""
        import pandas

        rows = [
            {
                "step": r.step,
                "signature": r.signature,
                "commit": r.commit,
                "started_at": r.started_at,
                "duration": r.duration,
                **{f"{k}": v for k, v in r.params.items()},
            }
            for r in self
        ]
        return pandas.DataFrame(rows)


def records(
    step: Any = None,
    since: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> RecordList:
    """Records of a step (a step function or a name; all steps if None), started at or
    after `since` (`2d`, `3h`, an ISO date), whose arguments match `params`."""
    name = getattr(step, "name", step) if step is not None else None
    session = session_for(Path.cwd())
    query = LogQuery(step=name, since=None if since is None else parse_when(since, "since"))
    with session.lock:
        found = newest_first([s for s in session.store.summaries() if query.matches(s)])
    function = None if isinstance(step, str) else step
    listed = RecordList(RecordView(s, function) for s in found)
    return listed.filter(**params) if params else listed


def _matches(summary: RecordSummary, params: Mapping[str, Any]) -> bool:
    from gitcache.python.codecs import Fingerprinter
    from gitcache.python.step import _blob_reader

    encode = Fingerprinter(blob_of=_blob_reader(session_for(Path.cwd())))
    for name, wanted in params.items():
        if name not in summary.params:
            return False
        have = summary.params[name]
        if have != encode(wanted, name):
            return False
    return True


def trust_record(record: Any) -> None:
    """Let this clone unpickle the result of a record (a RecordView or a commit id)."""
    commit = getattr(record, "commit", record)
    session = session_for(Path.cwd())
    with session.lock:
        stored = session.store.resolve(str(commit))
    results.trust_pickle(session.state_dir, stored.commit)

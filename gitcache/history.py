"""Listing records: what `gitcache log` shows, newest first."""

from __future__ import annotations

from dataclasses import dataclass

from gitcache.rewrites import answering_sources
from gitcache.store import RecordStore, StoredRecord


@dataclass(frozen=True)
class LogQuery:
    step: str | None = None
    limit: int | None = None
    commit: str | None = None  # a commit id: records made there or carried over to it


def list_records(store: RecordStore, query: LogQuery) -> list[StoredRecord]:
    sources = None if query.commit is None else answering_sources(store.repo, query.commit)
    found = [
        stored
        for stored in store.records()
        if (query.step is None or stored.record.step == query.step)
        and (sources is None or stored.record.source_commit in sources)
    ]
    found.sort(key=lambda s: (s.record.started_at, s.commit), reverse=True)
    return found if query.limit is None else found[: query.limit]

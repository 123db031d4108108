"""Listing records: what `gitcache log` shows, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

from gitcache.store import RecordStore, StoredRecord


@dataclass(frozen=True)
class LogQuery:
    step: str | None = None
    limit: int | None = None


def list_records(store: RecordStore, query: LogQuery) -> list[StoredRecord]:
    found = [
        stored
        for stored in chain(store.records(), store.alternates())
        if query.step is None or stored.record.step == query.step
    ]
    found.sort(key=lambda s: (s.record.started_at, s.commit), reverse=True)
    return found if query.limit is None else found[: query.limit]

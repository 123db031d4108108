"""Listing records: what `gitcache log` shows, newest first, and its filters."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

from gitcache.errors import RecordNotFound
from gitcache.params import decode as decode_param
from gitcache.params import encode
from gitcache.recordindex import RecordSummary
from gitcache.rewrites import answering_sources
from gitcache.store import RecordStore, StoredRecord
from gitcache.sweeps import ITEM, parse_selector, split_target, value_matches
from gitcache.timespec import record_time
from gitcache.workflow import Workflow, convert_value, split_assignment


@dataclass(frozen=True)
class LogQuery:
    step: str | None = None
    limit: int | None = None
    since: datetime | None = None  # records started at or after this moment
    params: Mapping[str, Any] = field(default_factory=dict)  # each must equal the record's
    commit: str | None = None  # a commit id: records made there or carried over to it
    item: Mapping[str, str] = field(default_factory=dict)  # a sweep item's values (as text)

    def matches(self, summary: RecordSummary, sources: frozenset[str] | None = None) -> bool:
        if self.step is not None and summary.step != self.step:
            return False
        if sources is not None and summary.source_commit not in sources:
            return False
        if self.item and (summary.item is None or not item_matches(summary.item, self.item)):
            return False
        if self.since is not None:
            started = record_time(summary.started_at)
            if started is None or started < self.since:
                return False
        return all(param_matches(summary.params, k, v) for k, v in self.params.items())


def item_matches(item: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """A record's item (values as record.json holds them) has every selected value."""
    from fnmatch import fnmatchcase

    for name, text in wanted.items():
        if name not in item:
            return False
        have = item[name]
        if name == ITEM and isinstance(have, str):
            if have != text and not fnmatchcase(have, text):
                return False
        elif not value_matches(decode_param(have), text):
            return False
    return True


def param_matches(params: Mapping[str, Any], name: str, wanted: Any) -> bool:
    """A record matches NAME=VALUE when it used NAME with that value (1 matches 1.0)."""
    if name not in params:
        return False
    have = params[name]
    wanted = encode(wanted)  # as records hold it: a TOML date is a tagged object
    if isinstance(wanted, str) and not isinstance(have, str):
        return str(have) == wanted
    return bool(have == wanted and isinstance(have, bool) == isinstance(wanted, bool))


def newest_first(found: list[RecordSummary]) -> list[RecordSummary]:
    return sorted(found, key=lambda s: (s.started_at, s.commit), reverse=True)


def list_records(store: RecordStore, query: LogQuery) -> list[RecordSummary]:
    sources = (
        None if query.commit is None else frozenset(answering_sources(store.repo, query.commit))
    )
    found = newest_first(
        [
            s
            for s in chain(store.summaries(), store.alternate_summaries())
            if query.matches(s, sources)
        ]
    )
    return found if query.limit is None else found[: query.limit]


def parse_param_filters(items: list[str], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`--param NAME=VALUE` filters: typed like the workflow's parameter when it has one,
    else read as a TOML value (`3`, `1.5`, `true`, `"a"`) or taken as a string."""
    result: dict[str, Any] = {}
    for item in items:
        name, text = split_assignment(item, "--param")
        if name in defaults:
            result[name] = convert_value(name, text, defaults[name], "--param")
            continue
        try:
            result[name] = tomllib.loads(f"v = {text}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):  # not TOML, or nested too deeply
            result[name] = text
    return result


def item_latest(store: RecordStore, workflow: Workflow, ident: str) -> StoredRecord | None:
    """`'train[lr=0.1,seed=1]'`: the latest record of the one item it names (None when
    `ident` is no item selector; RecordNotFound when it names none or several)."""
    name, selector = split_target(ident)
    template = workflow.steps.get(name)
    if selector is None or template is None or template.sweep is None:
        return None
    wanted = parse_selector(template, selector)
    found: dict[str, RecordSummary] = {}
    for s in newest_first(store.summaries()):
        if s.step == name and s.item is not None and item_matches(s.item, wanted):
            found.setdefault(s.label, s)
    if len(found) != 1:
        some = ", ".join(list(found)[:5])
        raise RecordNotFound(
            f"{ident!r} names {len(found)} items with records{': ' + some if some else ''}",
            hint="name one item (every axis), or a record id from `gitcache log`",
        )
    summary = next(iter(found.values()))
    assert summary.item is not None
    return store.latest(name, summary.item) or store.load(summary.commit)

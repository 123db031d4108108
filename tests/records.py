"""Writing records straight through the store API (ages, chosen signatures)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from gitcache.gitrepo import MODE_FILE, GitRepo, TreeEntry
from gitcache.record import Components, OutputFile, Record
from gitcache.store import NewRecord, RecordStore, StoredRecord


def write_record(
    root: Path,
    step: str,
    signature: str,
    started_at: str = "2026-01-01T00:00:00+00:00",
    params: dict[str, Any] | None = None,
    content: bytes = b"data\n",
    path: str = "out.txt",
) -> StoredRecord:
    repo = GitRepo.discover(root)
    store = RecordStore(repo)
    blob = repo.write_blob(content)
    record = Record(
        step=step,
        signature=signature,
        components=Components(
            format=1,
            kind="shell",
            code="true",
            shell="sh",
            params=params or {},
            inputs={},
            outputs=[path],
            env={},
        ),
        command="true",
        outputs=[OutputFile(path=path, blob=blob, mode=MODE_FILE, size=len(content))],
        source_commit=repo.head_commit(),
        dirty=False,
        started_at=started_at,
        duration=1.0,
        exit_status=0,
        host="test",
        gitcache_version="0",
    )
    with tempfile.TemporaryDirectory() as scratch:
        logs = {s: Path(scratch) / s for s in ("stdout", "stderr")}
        for log in logs.values():
            log.write_bytes(b"")
        stored = store.write(
            NewRecord(record, [TreeEntry(path, blob, MODE_FILE)], logs), repo.head_commit()
        )
    store.flush_index()
    return stored

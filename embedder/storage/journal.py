"""The journal of a write transaction: which shards are finished (``DB/.journal/<tx>.jsonl``).

A shard counts as finished only once its line is on disk (written, then ``fsync``); the
file it names was made durable before. After a kill the next transaction reads every
journal left behind and reuses a shard only when its file still verifies (size, Parquet
footer, SHA-256); the journals are deleted once a new manifest is published.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedder.contract import ShardRecord, fsync_dir, journal_dir, make_dirs
from embedder.contract.writer import JournalHeader, journal_line, parse_journal


class Journal:
    """An open journal of one transaction (append-only)."""

    def __init__(self, db: str | Path, header: JournalHeader) -> None:
        folder = journal_dir(db)
        make_dirs(folder)
        self.path = folder / f"{header.tx}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(folder)
        self.append(header)

    def append(self, obj: JournalHeader | ShardRecord) -> None:
        """Write one line and flush it to disk."""
        os.write(self._fd, journal_line(obj))
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (it stays on disk until the next publish sweeps it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journals(db: str | Path) -> list[tuple[Path, JournalHeader | None, list[ShardRecord]]]:
    """Every journal left in ``db`` (sorted by name) with its header and finished shards."""
    out = []
    for path in sorted(journal_dir(db).glob("*.jsonl")):
        try:
            header, shards = parse_journal(path.read_bytes())
        except OSError:
            continue
        out.append((path, header, shards))
    return out

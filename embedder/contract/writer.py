"""What a writer leaves beside the manifest: the lock holder record and the journal lines.

``DB/.lock`` holds one JSON object, the :class:`LockHolder` (pid, command, host, start
time) of the process holding the ``flock`` on it, and is emptied when it lets go; a
record left behind names a writer that died. ``DB/.journal/<tx>.jsonl`` is one JSON
object per line: a :class:`JournalHeader` first, then one
:class:`~embedder.contract.manifest.ShardRecord` per finished shard, each line flushed to
disk before the shard counts as done. A torn last line (a kill mid-write) is ignored.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from embedder.contract.io import utcnow
from embedder.contract.manifest import ShardRecord


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the writer lock of a database."""

    pid: int
    command: str
    host: str
    started: str

    @classmethod
    def me(cls, command: str) -> LockHolder:
        """This process, now."""
        return cls(os.getpid(), command, socket.gethostname(), utcnow())

    def to_json(self) -> bytes:
        """One JSON object."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def parse(cls, raw: bytes) -> LockHolder | None:
        """The record in ``raw``; ``None`` when empty or unreadable (a torn write)."""
        try:
            d = json.loads(raw.decode() or "null")
            return cls(int(d["pid"]), str(d["command"]), str(d["host"]), str(d["started"])) if d else None
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None

    def describe(self) -> str:
        """``pid 123 on host since 2026-01-01T00:00:00+00:00 (earthvec build ...)``."""
        return f"pid {self.pid} on {self.host} since {self.started} ({self.command or 'unknown command'})"


@dataclass(frozen=True)
class JournalHeader:
    """First line of a journal: which transaction, on top of which generation."""

    tx: str
    base_generation: int
    replace: bool
    command: str
    started: str = field(default_factory=utcnow)


def journal_line(obj: JournalHeader | ShardRecord) -> bytes:
    """One journal line (JSON + newline)."""
    d: dict[str, Any] = (
        {"header": asdict(obj)} if isinstance(obj, JournalHeader) else {"shard": obj.to_dict()}
    )
    return json.dumps(d, sort_keys=True).encode() + b"\n"


def parse_journal(raw: bytes) -> tuple[JournalHeader | None, list[ShardRecord]]:
    """Header and shard records of a journal; stops at the first torn or unreadable line."""
    header: JournalHeader | None = None
    shards: list[ShardRecord] = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if "header" in d and header is None:
                header = JournalHeader(**d["header"])
            elif "shard" in d:
                shards.append(ShardRecord.from_dict(d["shard"]))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            break
    return header, shards

"""Where a derived file came from: the embeddings fingerprint its metadata records.

Prediction maps and pyramid levels record, in a JSON block of their Parquet metadata
(``earthvec_labels``, ``earthvec_pyramid``), the fingerprint of the embeddings generation
they were made from. A file whose fingerprint differs from the published generation's is
*stale*: reports name it, SQL views leave it out, and reading it for search is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from embedder import contract


def made_from(path: str | Path, key: bytes) -> str | None:
    """The embeddings fingerprint recorded in ``path``'s ``key`` block (None if it has none)."""
    raw = (pq.read_schema(path).metadata or {}).get(key, b"{}")
    try:
        made = json.loads(raw)
    except ValueError:
        return None
    return made.get("fingerprint") if isinstance(made, dict) else None


def is_fresh(path: str | Path, key: bytes, snap: contract.Snapshot) -> bool:
    """Whether ``path`` was made from the embeddings of ``snap``."""
    return made_from(path, key) == snap.fingerprint

"""Where the index layer keeps derived files inside a database (no heavy imports).

``DB/index`` (FAISS index + sidecar, see :mod:`index.sidecar`), ``DB/labels`` and
``DB/predictions`` (see :mod:`embedder.contract`), and ``DB/pyramid/res=<r>.parquet`` (parent
aggregates, see :mod:`index.pyramid`).
"""

from __future__ import annotations

from pathlib import Path

PYRAMID_DIR = "pyramid"


def level_path(db: str | Path, res: int) -> Path:
    """File of one pyramid level."""
    return Path(db) / PYRAMID_DIR / f"res={res}.parquet"

"""A summary of a database: counts, model, resolution, partitions, dates and index state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from embedder import contract
from embedder.contract import Sidecar, index_dir, pyramid_levels, table_files
from embedder.contract.layout import listed_embedding_files
from index.ondisk_db import ondisk_summary
from index.origin import is_fresh
from index.pyramid import level_state
from index.store import index_state


def db_info(db: str | Path) -> dict[str, Any]:
    """Describe ``db`` without building anything.

    Returns:
        JSON-able dict: ``generation`` (0: a folder without a manifest), ``fingerprint``,
        ``rows``, ``cells``, ``partitions``, ``files``, ``bytes``, ``model``,
        ``dim``, ``h3_resolution``, ``partition_resolution``, ``datetime_min/max``,
        ``dated_rows``, ``modalities``, ``sensors``, ``index`` (state, factory, count),
        ``ondisk`` (the out-of-core index: state ``fresh``/``stale``, factory, count, ...;
        ``None`` when it has none),
        ``pyramid`` (resolutions of the parent aggregates built), ``labels`` and
        ``predictions`` (file names), ``stale_pyramid`` and ``stale_predictions`` (made from
        other embeddings: rebuild them), ``unlisted`` (Parquet files under ``embeddings/``
        that the published generation does not list: readers ignore them).

    Raises:
        InputNotFoundError: no embeddings in ``db``.
        ModelMismatchError: the files mix model versions.
    """
    db = Path(db)
    with contract.pinned(db) as snap:
        return _info(db, snap)


def _info(db: Path, snap: contract.Snapshot) -> dict[str, Any]:
    meta = contract.read_meta(db)
    files = contract.embedding_files(db)
    t = contract.read_table(
        db, columns=[contract.H3, contract.DATETIME, contract.MODALITIES, contract.SENSORS]
    )
    dt = t.column(contract.DATETIME)
    mm = pc.min_max(dt).as_py() if t.num_rows else {"min": None, "max": None}
    sc = Sidecar.load(db)
    state = index_state(db)
    levels = pyramid_levels(db)
    out: dict[str, Any] = {
        "db": str(db),
        "generation": snap.generation,
        "fingerprint": snap.fingerprint,
        "rows": t.num_rows,
        "cells": int(len(np.unique(t.column(contract.H3).to_numpy()))),
        "partitions": len({f.parent.name for f in files}),
        "files": len(files),
        "bytes": int(sum(f.stat().st_size for f in files)),
        "model": meta.model,
        "dim": meta.dim,
        "h3_resolution": meta.h3_resolution,
        "partition_resolution": meta.partition_resolution,
        "datetime_min": mm["min"].isoformat() if mm["min"] else None,
        "datetime_max": mm["max"].isoformat() if mm["max"] else None,
        "dated_rows": t.num_rows - dt.null_count,
        "modalities": _counts(t.column(contract.MODALITIES)),
        "sensors": _counts(t.column(contract.SENSORS)),
        "index": {
            "state": state,
            "path": str(index_dir(db)),
            "factory": sc.factory if sc else None,
            "count": sc.count if sc else None,
            "model": sc.model if sc else None,
            "built_at": sc.built_at if sc else None,
        },
        "ondisk": ondisk_summary(db),
        "pyramid": levels,
        "stale_pyramid": [r for r in levels if level_state(db, r) == "stale"],
        "labels": _names(db / contract.LABELS_DIR),
        "predictions": _names(db / contract.PREDICTIONS_DIR),
        "stale_predictions": _stale_maps(db, snap),
        "unlisted": _unlisted(db, snap),
    }
    return out


def _unlisted(db: Path, snap: contract.Snapshot) -> list[str]:
    """Parquet files under ``embeddings/`` that the published generation does not list.

    Readers ignore them: files dropped in by hand, or shards of an unfinished write (which
    the next write resumes or sweeps).
    """
    if snap.manifest is None:
        return []
    listed = {p.resolve() for p in snap.files}
    return [
        p.relative_to(db).as_posix()
        for p in listed_embedding_files(db)
        if p.resolve() not in listed
    ]


def _counts(col: Any) -> dict[str, int]:
    flat = pc.list_flatten(col)
    if len(flat) == 0:
        return {}
    vc = pc.value_counts(flat).to_pylist()
    return {str(d["values"]): int(d["counts"]) for d in sorted(vc, key=lambda d: str(d["values"]))}


def _stale_maps(db: Path, snap: contract.Snapshot) -> list[str]:
    """Prediction maps made from other embeddings than the snapshot's (or of unknown origin)."""
    folder = db / contract.PREDICTIONS_DIR
    return [n for n in _names(folder) if not is_fresh(folder / n, contract.LABELS_META_KEY, snap)]


def _names(folder: Path) -> list[str]:
    return [p.name for p in table_files(folder)]

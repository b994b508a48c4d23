"""kNN labelling: predict a class for every cell from a few seeds, with spatial cross-validation.

The vote itself is :mod:`index.vote` (each cell against every seed, exact) and the
accuracy estimate :mod:`index.cv`; this module streams the database through them and
writes the map. Partitions stream (one read ahead, one being
written: memory holds a few partitions, never the database); vectors come zero-copy from
Arrow, and the map is written with pyarrow as GeoParquet through a temporary file. A
database folder needs no FAISS index: seed vectors are read from the seeds' partitions.

Accuracy is estimated by spatially blocked cross-validation: seeds are grouped by their
parent cell at a coarse resolution (the blocks) and whole blocks are held out together, so
test seeds are never next to training seeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract
from embedder.contract.manifest import LABELS, PREDICTIONS
from embedder.errors import SeedError
from embedder.storage import derived_entry, derived_writer, origin, publish_derived
from index.cv import BLOCK_RES_OFFSET, DEFAULT_FOLDS, DEFAULT_K, CVResult, spatial_cv
from index.filters import Filter
from index.seeds import LABEL, Seeds, map_seeds, read_seeds, seed_cells
from index.store import VectorIndex
from index.vectors import (
    embedding_chunks,
    latest_rows,
    lookup_latest,
    partition_files,
    partition_overlaps,
    read_files,
)
from index.vote import SeedVoter

CONFIDENCE = contract.CONFIDENCE
LABELS_META_KEY = contract.LABELS_META_KEY
MAP_COMPRESSION = "zstd"


@dataclass
class LabelResult:
    """Outcome of :func:`label_db`."""

    seeds: Seeds
    cv: CVResult
    n_cells: int
    predicted_counts: dict[str, int]
    out: Path | None
    copy: Path | None
    k: int
    seed_layer: Path | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (also stored in the prediction file's metadata)."""
        return {
            "seeds_file": str(self.seeds.path),
            "seeds_read": self.seeds.n_read,
            "seeds_used": len(self.seeds.cells),
            "seeds_outside_db": self.seeds.n_outside,
            "seeds_duplicate_cell": self.seeds.n_duplicate,
            "seed_counts": self.seeds.class_counts(),
            "k": self.k,
            "cv": asdict(self.cv),
            "cells": self.n_cells,
            "predicted_counts": self.predicted_counts,
        }


@dataclass(frozen=True)
class MapSource:
    """What a label map reads: the database folder and its resolutions.

    ``vi`` is an open index holding the exact vectors in memory (Flat, HNSW-Flat, IVF-Flat);
    the map then takes each cell's vector from it and reads only the cells' attributes and
    geometry from Parquet (the embedding column dominates decoding time).
    """

    db: Path
    resolution: int
    partition_resolution: int
    model: str
    vi: VectorIndex | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, db: str | Path | VectorIndex) -> MapSource:
        """From an open index (no I/O) or a database folder (contract-checked metadata)."""
        if isinstance(db, VectorIndex):
            in_ram = db.row_order.matrix is not None or db.exact_vectors
            return cls(
                Path(db.db), db.resolution, db.sidecar.partition_resolution, db.model, db if in_ram else None
            )
        meta = contract.read_meta(db)
        return cls(Path(db), meta.h3_resolution, meta.partition_resolution, meta.model)


Part = tuple[pa.Table, list[np.ndarray]]
"""A partition's rows to label and their vectors (one or more matrices, stacked in order)."""


def _partition_tables(src: MapSource, flt: Filter, progress: bool) -> Iterator[Part]:
    """Most recent rows (inside ``flt``) of each partition overlapping ``flt``'s region."""
    files = partition_files(src.db)
    parts = list(files)
    ranges = flt.id_ranges(src.resolution)
    if ranges:
        parts = [p for p in parts if any(partition_overlaps(p, lo, hi, src.resolution) for lo, hi in ranges)]
    vi = src.vi if src.vi is not None and not (flt.has_time and src.vi.sidecar.multi_date) else None
    cols = [contract.H3, contract.DATETIME, contract.LAT, contract.LON, contract.GEOMETRY]
    if vi is None:
        cols.append(contract.EMBEDDING)
    if not flt.empty:
        cols.append(contract.VALID_FRACTION)
    # a time range picks each cell's most recent row inside the range (as search does)
    expr = flt.arrow_expression(src.resolution) if flt.has_time else None
    for p in tqdm(parts, desc="labelling partitions", unit="part", disable=not progress):
        table = latest_rows(read_files(files[p], cols, expr))[0]
        if not flt.empty and table.num_rows:
            table = table.filter(pa.array(flt.mask(table, src.resolution)))
        if not table.num_rows:
            continue
        if vi is None:
            yield table, embedding_chunks(table)
            continue
        pos = vi.positions(np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64))
        if (pos < 0).any():  # the files changed after the index was opened: read this one
            table = latest_rows(read_files(files[p], [*cols, contract.EMBEDDING], expr))[0]
            if not flt.empty:
                table = table.filter(pa.array(flt.mask(table, src.resolution)))
            yield table, embedding_chunks(table)
        else:
            yield table, [vi.vectors_at(pos)]


def _prefetch(it: Iterator[Part]) -> Iterator[Part]:
    """Iterate ``it`` one item ahead in a worker thread (Parquet decoding releases the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="earthvec-read") as pool:
        nxt = pool.submit(next, it, None)
        while True:
            item = nxt.result()
            if item is None:
                return
            nxt = pool.submit(next, it, None)
            yield item


def _predict(
    src: MapSource, voter: SeedVoter, classes: pa.Array, flt: Filter, progress: bool
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    schema = contract.prediction_schema()
    for table, vectors in _prefetch(_partition_tables(src, flt, progress)):
        pred, conf = voter(vectors)
        out = pa.Table.from_arrays(
            [
                table.column(contract.H3),
                table.column(contract.LAT),
                table.column(contract.LON),
                table.column(contract.GEOMETRY),
                contract.bbox_array(table.column(contract.GEOMETRY)),
                classes.take(pa.array(pred)),
                pa.array(conf, type=pa.float32()),
            ],
            schema=schema,
        )
        yield out, pred


def predict_partitions(
    db: str | Path | VectorIndex,
    seed_vectors: np.ndarray,
    seed_classes: np.ndarray,
    classes: np.ndarray,
    *,
    k: int,
    flt: Filter | None = None,
    progress: bool = False,
) -> Iterator[pa.Table]:
    """Yield one prediction table per partition (streaming).

    Every cell is scored against every seed (exact; :class:`SeedVoter`). The next partition
    is read while one is labelled, so at most two partitions are in memory. A region filter
    skips partitions outside it; a time range labels each cell by its most recent row inside
    the range.
    """
    src = MapSource.of(db)
    voter = SeedVoter(seed_vectors, seed_classes, len(classes), k)
    names = pa.array([str(c) for c in classes], type=pa.string())
    for table, _ in _predict(src, voter, names, flt or Filter(), progress):
        yield table


def seeds_with_vectors(
    db: str | Path | VectorIndex, seeds: str | Path, src: MapSource
) -> tuple[Seeds, np.ndarray]:
    """Read seeds, map them onto the database's cells and fetch their (most recent) vectors.

    With an open index the vectors come from it; with a folder only the partitions holding
    seeds are read (no index is needed or built).
    """
    df = read_seeds(seeds)
    if isinstance(db, VectorIndex):
        s = map_seeds(df, db.ids, db.resolution, seeds)
        return s, db.vectors(s.cells)
    wanted = seed_cells(df, src.resolution, str(seeds))
    ids, vecs = lookup_latest(src.db, wanted, src.partition_resolution)
    s = map_seeds(df, ids, src.resolution, seeds)
    return s, vecs[np.searchsorted(ids, s.cells)]


def label_db(
    db: str | Path | VectorIndex,
    seeds: str | Path,
    *,
    k: int = DEFAULT_K,
    out: str | Path | None = None,
    block_res: int | None = None,
    n_folds: int = DEFAULT_FOLDS,
    flt: Filter | None = None,
    progress: bool = False,
    wait: bool = True,
) -> LabelResult:
    """Label every cell (or those passing ``flt``) of a database from seed labels.

    Writes the map to ``out`` (GeoParquet: h3, lat, lon, geometry, label, confidence) and a
    copy to ``DB/predictions/<out name>``; the seeds mapped to cells go to
    ``DB/labels/<seed file stem>.parquet``. Files are written atomically; nothing is
    written when the seeds are unusable. Every cell is compared with every seed (exact),
    partition by partition: memory holds a few partitions, never the database. A folder
    needs no FAISS index (seed vectors are read from the seeds' partitions).

    Args:
        db: database folder or open index.
        seeds: CSV (``lat,lon,label`` or ``h3,label``) or GeoJSON points with ``label``.
        k: neighbours per vote.
        out: output Parquet path; ``None`` computes the CV and counts only.
        block_res: CV block resolution (default: database resolution minus 4, at least 0).
        n_folds: CV folds.
        flt: restrict the map to a region/time/attribute filter.
        progress: progress bar over partitions.
        wait: with ``out``, wait for another writer of the database (False: fail at once).

    With ``out`` this is a writer: it holds the database lock, labels the current
    generation and records it (generation, embeddings fingerprint, model) in the map's
    metadata and, in a database with a manifest, publishes the map and the seed layer there.

    Raises:
        SeedError: unusable seeds (none in the DB, one class only, bad rows).
        QueryError: a bad filter.
        DatabaseLockedError: with ``out``, another writer holds the database and not ``wait``.
    """
    if k < 1:
        raise SeedError(f"k={k}: use at least one neighbour")
    folder = Path(db.db) if isinstance(db, VectorIndex) else Path(db)
    hold = derived_writer(folder, "earthvec label", wait=wait) if out is not None else contract.pinned(folder)
    with hold as snap:
        result = _label(db, seeds, k, out, block_res, n_folds, flt, progress, snap)
        if out is not None and snap.manifest is not None and result.copy is not None:
            rels = [p.relative_to(folder).as_posix() for p in (result.copy, result.seed_layer) if p]
            publish_derived(
                folder,
                {
                    r: derived_entry(
                        PREDICTIONS if r.startswith(contract.PREDICTIONS_DIR) else LABELS,
                        [r],
                        snap,
                        snap.manifest.model,
                    )
                    for r in rels
                },
                command="earthvec label",
            )
    return result


def _label(
    db: str | Path | VectorIndex,
    seeds: str | Path,
    k: int,
    out: str | Path | None,
    block_res: int | None,
    n_folds: int,
    flt: Filter | None,
    progress: bool,
    snap: contract.Snapshot,
) -> LabelResult:
    src = MapSource.of(db)
    s, vectors = seeds_with_vectors(db, seeds, src)
    if flt is not None:
        flt.validate(src.resolution)
    classes, y = np.unique(s.labels, return_inverse=True)
    bres = max(0, src.resolution - BLOCK_RES_OFFSET) if block_res is None else block_res
    if not 0 <= bres <= src.resolution:
        raise SeedError(f"block resolution {bres} must lie in [0, {src.resolution}]")
    cv = spatial_cv(s.cells, vectors, s.labels, k=k, block_res=bres, n_folds=n_folds)
    result = LabelResult(s, cv, 0, dict.fromkeys(classes.tolist(), 0), None, None, k)
    voter = SeedVoter(vectors, y, len(classes), k)
    names = pa.array(classes.tolist(), type=pa.string())
    counts = np.zeros(len(classes), dtype=np.int64)
    out_path = Path(out) if out is not None else None
    tmp: Path | None = None
    writer: pq.ParquetWriter | None = None
    try:
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = contract.temp_path(out_path)
            writer = _map_writer(tmp, src, result, origin(snap, src.model))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="earthvec-write") as pool:
            pending: Future[None] | None = None
            for t, pred in _predict(src, voter, names, flt or Filter(), progress):
                counts += np.bincount(pred, minlength=len(classes))
                result.n_cells += t.num_rows
                if writer is not None:  # write in the background while the next block is labelled
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(writer.write_table, t)
            if pending is not None:
                pending.result()
        result.predicted_counts = {str(c): int(n) for c, n in zip(classes, counts, strict=True)}
        if writer is not None and tmp is not None and out_path is not None:
            writer.close()
            writer = None
            contract.publish_file(tmp, out_path)
            result.out = out_path
            copy = src.db / contract.PREDICTIONS_DIR / out_path.name
            if copy.resolve() != out_path.resolve():
                contract.copy_atomic(out_path, copy)
            result.copy = copy
            result.seed_layer = contract.label_path(src.db, Path(seeds).stem)
            contract.write_table_atomic(s.table(), result.seed_layer)
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return result


label_map = label_db
"""Alias: the planet-scale kNN label map (see :func:`label_db`)."""


def _map_writer(path: Path, src: MapSource, result: LabelResult, made: dict[str, Any]) -> pq.ParquetWriter:
    # dictionary-encode only the label: h3, geometry and scores are (nearly) unique, and
    # trying dictionaries on them costs more time than the file saves
    return pq.ParquetWriter(
        path, _schema_with_meta(src, result, made), compression=MAP_COMPRESSION, use_dictionary=[LABEL]
    )


def _schema_with_meta(vi: MapSource, result: LabelResult, made: dict[str, Any]) -> pa.Schema:
    info = {
        **made,
        "model": vi.model,
        "h3_resolution": vi.resolution,
        "created": contract.utcnow(),
        **{k: v for k, v in result.summary().items() if k not in ("cells", "predicted_counts")},
    }
    return contract.geo_schema(
        contract.prediction_schema(),
        {LABELS_META_KEY: json.dumps(info, sort_keys=True, default=str).encode()},
    )

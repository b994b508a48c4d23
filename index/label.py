"""kNN labelling: predict a class for every cell from a few seeds, with spatial cross-validation.

Each cell takes the labels of its ``k`` most similar seeds; votes are weighted by
similarity, ``w = (1 + cos) / 2``, and the confidence is the winner's share of the weight.
The map is computed one partition at a time (memory stays bounded by the largest
partition) and written as GeoParquet through a temporary file.

Accuracy is estimated by spatially blocked cross-validation: seeds are grouped by their
parent cell at a coarse resolution (the blocks) and whole blocks are held out together, so
test seeds are never next to training seeds.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract, h3grid
from embedder.errors import SeedError
from index.filters import Filter
from index.search import as_index
from index.seeds import LABEL, Seeds, map_seeds, read_seeds
from index.store import VectorIndex
from index.vectors import latest_rows, partition_files, read_files

CONFIDENCE = "confidence"
LABELS_META_KEY = b"earthvec_labels"
DEFAULT_K = 5
DEFAULT_FOLDS = 5
BLOCK_RES_OFFSET = 4
"""Default CV blocks: parents 4 resolutions coarser than the cells (res 8 -> res 4, ~22 km)."""


def prediction_schema() -> pa.Schema:
    """Schema of a prediction map (GeoParquet)."""
    return pa.schema(
        [
            pa.field(contract.H3, pa.uint64(), nullable=False),
            pa.field(contract.LAT, pa.float64(), nullable=False),
            pa.field(contract.LON, pa.float64(), nullable=False),
            pa.field(contract.GEOMETRY, pa.binary(), nullable=False),
            pa.field(LABEL, pa.string(), nullable=False),
            pa.field(CONFIDENCE, pa.float32(), nullable=False),
        ]
    )


def knn_vote(
    seed_vectors: np.ndarray, seed_classes: np.ndarray, n_classes: int, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted kNN vote (exact, numpy).

    Args:
        seed_vectors: (S, D) unit vectors of the seeds.
        seed_classes: (S,) class numbers in ``[0, n_classes)``.
        n_classes: number of classes.
        queries: (N, D) unit vectors to label.
        k: neighbours per query (capped at S).

    Returns:
        Predicted class numbers (N,) and confidences (N,) in (0, 1].
    """
    k = max(1, min(k, len(seed_vectors)))
    sims = queries @ seed_vectors.T
    nn = (
        np.argpartition(-sims, k - 1, axis=1)[:, :k]
        if k < len(seed_vectors)
        else np.tile(np.arange(len(seed_vectors)), (len(queries), 1))
    )
    w = (1.0 + np.take_along_axis(sims, nn, axis=1)) / 2.0 + 1e-9
    votes = np.zeros((len(queries), n_classes), dtype=np.float64)
    np.add.at(
        votes,
        (np.repeat(np.arange(len(queries)), nn.shape[1]), seed_classes[nn].ravel()),
        w.ravel(),
    )
    pred = votes.argmax(axis=1)
    conf = votes[np.arange(len(queries)), pred] / votes.sum(axis=1)
    return pred, conf.astype(np.float32)


@dataclass
class CVResult:
    """Spatially blocked cross-validation of the seeds.

    Attributes:
        accuracy: share of held-out seeds predicted right (``None`` when CV was impossible).
        n_folds: folds used.
        n_blocks: spatial blocks (parent cells) holding seeds.
        block_resolution: H3 resolution of the blocks.
        fold_accuracy: accuracy of each fold.
        message: why CV was skipped or is weak, else empty.
    """

    accuracy: float | None
    n_folds: int
    n_blocks: int
    block_resolution: int
    fold_accuracy: list[float] = field(default_factory=list)
    message: str = ""


def block_folds(blocks: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold number per seed: whole blocks per fold, folds balanced by seed count.

    Largest blocks are placed first, each in the fold holding fewest seeds so far
    (deterministic, like a group k-fold).
    """
    ub, inv, counts = np.unique(blocks, return_inverse=True, return_counts=True)
    fold_of_block = np.zeros(len(ub), dtype=np.int64)
    sizes = np.zeros(n_folds, dtype=np.int64)
    for b in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(sizes))
        fold_of_block[b] = f
        sizes[f] += counts[b]
    return fold_of_block[inv]


def spatial_cv(
    cells: np.ndarray,
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = DEFAULT_K,
    block_res: int,
    n_folds: int = DEFAULT_FOLDS,
) -> CVResult:
    """Spatially blocked k-fold accuracy of kNN labelling on the seeds themselves."""
    blocks = h3grid.cell_parents(cells, block_res)
    n_blocks = len(np.unique(blocks))
    if n_blocks < 2:
        return CVResult(
            None,
            0,
            n_blocks,
            block_res,
            message=f"all seeds lie in {n_blocks} block at resolution {block_res}: too few "
            "blocks for spatial cross-validation; spread seeds over more places or use a "
            "finer block resolution",
        )
    folds = min(n_folds, n_blocks)
    fold = block_folds(blocks, folds)
    classes, y = np.unique(labels, return_inverse=True)
    right = np.zeros(len(cells), dtype=bool)
    per = []
    for f in range(folds):
        test, train = fold == f, fold != f
        pred, _ = knn_vote(vectors[train], y[train], len(classes), vectors[test], k)
        right[test] = pred == y[test]
        per.append(float(right[test].mean()))
    msg = ""
    if n_blocks < n_folds:
        msg = f"only {n_blocks} spatial blocks: {folds} folds instead of {n_folds}; the estimate is rough"
    return CVResult(float(right.mean()), folds, n_blocks, block_res, per, msg)


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


def predict_partitions(
    vi: VectorIndex,
    seed_vectors: np.ndarray,
    seed_classes: np.ndarray,
    classes: np.ndarray,
    *,
    k: int,
    flt: Filter | None = None,
    progress: bool = False,
) -> Iterator[pa.Table]:
    """Yield one prediction table per partition (streaming; one partition in memory).

    A region filter skips partitions outside it; a time range labels each cell by its most
    recent row inside the range.
    """
    flt = flt or Filter()
    files = partition_files(vi.db)
    parts = list(files)
    ranges = flt.id_ranges(vi.resolution)
    if ranges:
        parts = [p for p in parts if any(_overlaps(p, lo, hi, vi.resolution) for lo, hi in ranges)]
    cols = [
        contract.H3,
        contract.DATETIME,
        contract.LAT,
        contract.LON,
        contract.GEOMETRY,
        contract.VALID_FRACTION,
        contract.EMBEDDING,
    ]
    # a time range picks each cell's most recent row inside the range (as search does)
    expr = flt.arrow_expression(vi.resolution) if flt.has_time else None
    for p in tqdm(parts, desc="labelling partitions", unit="part", disable=not progress):
        table = latest_rows(read_files(files[p], cols, expr))[0]
        if not flt.empty:
            table = table.filter(pa.array(flt.mask(table, vi.resolution)))
        if table.num_rows == 0:
            continue
        pred, conf = knn_vote(seed_vectors, seed_classes, len(classes), contract.embeddings_matrix(table), k)
        yield pa.Table.from_arrays(
            [
                table.column(contract.H3),
                table.column(contract.LAT),
                table.column(contract.LON),
                table.column(contract.GEOMETRY),
                pa.array(classes[pred].tolist(), type=pa.string()),
                pa.array(conf, type=pa.float32()),
            ],
            schema=prediction_schema(),
        )


def _overlaps(part: str, lo: int, hi: int, res: int) -> bool:
    plo, phi = h3grid.descendant_range(h3grid.parse_cell(part), res)
    return plo <= hi and lo <= phi


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
) -> LabelResult:
    """Label every cell (or those passing ``flt``) of a database from seed labels.

    Writes the map to ``out`` (GeoParquet: h3, lat, lon, geometry, label, confidence) and a
    copy to ``DB/predictions/<out name>``; the seeds mapped to cells go to
    ``DB/labels/<seed file stem>.parquet``. Files are written atomically; nothing is
    written when the seeds are unusable.

    Args:
        db: database folder or open index.
        seeds: CSV (``lat,lon,label`` or ``h3,label``) or GeoJSON points with ``label``.
        k: neighbours per vote.
        out: output Parquet path; ``None`` computes the CV and counts only.
        block_res: CV block resolution (default: database resolution minus 4, at least 0).
        n_folds: CV folds.
        flt: restrict the map to a region/time/attribute filter.
        progress: progress bar over partitions.

    Raises:
        SeedError: unusable seeds (none in the DB, one class only, bad rows).
        QueryError: a bad filter.
    """
    if k < 1:
        raise SeedError(f"k={k}: use at least one neighbour")
    vi = as_index(db)
    s = map_seeds(read_seeds(seeds), vi.ids, vi.resolution, seeds)
    if flt is not None:
        flt.validate(vi.resolution)
    vectors = vi.vectors(s.cells)
    classes, y = np.unique(s.labels, return_inverse=True)
    bres = max(0, vi.resolution - BLOCK_RES_OFFSET) if block_res is None else block_res
    if not 0 <= bres <= vi.resolution:
        raise SeedError(f"block resolution {bres} must lie in [0, {vi.resolution}]")
    cv = spatial_cv(s.cells, vectors, s.labels, k=k, block_res=bres, n_folds=n_folds)
    counts: dict[str, int] = dict.fromkeys(classes.tolist(), 0)
    n = 0
    tmp: Path | None = None
    writer: pq.ParquetWriter | None = None
    result = LabelResult(s, cv, 0, counts, None, None, k)
    out_path = Path(out) if out is not None else None
    try:
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")
        for t in predict_partitions(vi, vectors, y, classes, k=k, flt=flt, progress=progress):
            n += t.num_rows
            names, c = np.unique(t.column(LABEL).to_numpy(zero_copy_only=False), return_counts=True)
            for name, cnt in zip(names, c, strict=True):
                counts[str(name)] += int(cnt)
            if tmp is not None:
                if writer is None:
                    writer = pq.ParquetWriter(tmp, _schema_with_meta(vi, result), compression="zstd")
                writer.write_table(t)
        result.n_cells = n
        if tmp is not None and out_path is not None:
            if writer is None:
                writer = pq.ParquetWriter(tmp, _schema_with_meta(vi, result), compression="zstd")
            writer.close()
            writer = None
            os.replace(tmp, out_path)
            result.out = out_path
            copy = Path(vi.db) / contract.PREDICTIONS_DIR / out_path.name
            if copy.resolve() != out_path.resolve():
                _copy_atomic(out_path, copy)
            result.copy = copy
            contract.write_table_atomic(
                s.table(), Path(vi.db) / contract.LABELS_DIR / f"{Path(seeds).stem}.parquet"
            )
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return result


def _schema_with_meta(vi: VectorIndex, result: LabelResult) -> pa.Schema:
    info = {
        "model": vi.model,
        "h3_resolution": vi.resolution,
        "created": contract.utcnow(),
        **{k: v for k, v in result.summary().items() if k not in ("cells", "predicted_counts")},
    }
    return prediction_schema().with_metadata(
        {
            contract.GEO_KEY: json.dumps(contract.geo_metadata()).encode(),
            LABELS_META_KEY: json.dumps(info, sort_keys=True, default=str).encode(),
        }
    )


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)

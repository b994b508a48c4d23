"""kNN labelling: predict a class for every cell from a few seeds, with spatial cross-validation.

Each cell takes the labels of its ``k`` most similar seeds; votes are weighted by
similarity, ``w = (1 + cos) / 2``, and the confidence is the winner's share of the weight.
The map queries every cell against the seeds, not against the database: per block of
cells one (cells x seeds) inner-product matrix (FAISS flat index over the seeds: BLAS plus
a heap top-k, exact), then a vectorised vote. Partitions stream (one read ahead, one being
written: memory holds a few partitions, never the database); vectors come zero-copy from
Arrow, and the map is written with pyarrow as GeoParquet through a temporary file. A
database folder needs no FAISS index: seed vectors are read from the seeds' partitions.

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract, h3grid
from embedder.errors import SeedError
from index.filters import Filter
from index.seeds import LABEL, Seeds, map_seeds, read_seeds, seed_cells
from index.store import VectorIndex
from index.vectors import latest_rows, lookup_latest, partition_files, read_files

CONFIDENCE = "confidence"
LABELS_META_KEY = b"earthvec_labels"
DEFAULT_K = 5
DEFAULT_FOLDS = 5
MAP_COMPRESSION = "zstd"
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


BLOCK_ROWS = 16_384
"""Cells scored per matrix product (bounds memory to ``BLOCK_ROWS x seeds`` similarities)."""


def seed_index(seed_vectors: np.ndarray) -> faiss.IndexFlatIP:
    """An exact inner-product index over the seeds (BLAS products plus a heap top-k)."""
    sv = np.ascontiguousarray(seed_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(sv.shape[1])
    index.add(sv)
    return index


def vote(sims: np.ndarray, classes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted vote of neighbours, vectorised over rows.

    A class's vote is the sum of ``(1 + cos) / 2`` over the neighbours holding it. Computed
    per neighbour slot (``k x k`` vector operations, no dense rows x classes table); sums
    run over the slots in order, so they equal a per-class accumulation bit for bit.

    Args:
        sims: (N, k) cosine similarities of each row's neighbours.
        classes: (N, k) class numbers (``< n_classes``) of those neighbours.
        n_classes: number of classes.

    Returns:
        Winning class (N,) (lowest class number on a tie) and its share of the weight (N,).
    """
    n, k = sims.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    w = (1.0 + sims.astype(np.float64)) / 2.0 + 1e-9
    total = np.zeros(n, dtype=np.float64)
    best = np.full(n, -1.0)
    pred = np.full(n, n_classes, dtype=np.int64)
    for j in range(k):
        total += w[:, j]
        cj = classes[:, j]
        score = np.zeros(n, dtype=np.float64)
        for i in range(k):
            score += np.where(classes[:, i] == cj, w[:, i], 0.0)
        better = (score > best) | ((score == best) & (cj < pred))
        best = np.where(better, score, best)
        pred = np.where(better, cj, pred)
    return pred, (best / total).astype(np.float32)


class SeedVoter:
    """Exact kNN vote of many cells against a fixed set of seeds.

    Every cell is compared with every seed: a (cells x seeds) matrix product per block of
    :data:`BLOCK_ROWS` cells (FAISS flat inner product: BLAS plus a heap top-k), then the
    ``k`` best seeds vote. Blocks run on a pool of one thread per core, each calling FAISS
    single-threaded: no OpenMP barriers, which stall badly on a busy machine.
    """

    def __init__(self, seed_vectors: np.ndarray, seed_classes: np.ndarray, n_classes: int, k: int) -> None:
        self.k = max(1, min(int(k), len(seed_vectors)))
        self.classes = np.asarray(seed_classes, dtype=np.int64)
        self.n_classes = int(n_classes)
        self.dim = int(seed_vectors.shape[1])
        self.index = seed_index(seed_vectors)

    def _block(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims, nn = self.index.search(q, self.k)
        return vote(sims, self.classes[nn], self.n_classes)

    def __call__(
        self, queries: np.ndarray | list[np.ndarray], block: int = BLOCK_ROWS
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class numbers (N,) and confidences (N,) of unit vectors (N, D).

        ``queries`` is one matrix or a list of matrices (e.g. the zero-copy chunks of an
        Arrow column), labelled as if stacked.
        """
        mats = queries if isinstance(queries, list) else [queries]
        qs = [np.ascontiguousarray(m, dtype=np.float32).reshape(-1, self.dim) for m in mats]
        block = min(block, max(1024, -(-sum(len(q) for q in qs) // SEARCH_WORKERS)))  # all cores busy
        blocks = [q[b : b + block] for q in qs for b in range(0, len(q), block)]
        if not blocks:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        parts = list(_search_pool().map(self._block, blocks))
        return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


_POOL: list[ThreadPoolExecutor] = []
SEARCH_WORKERS = max(1, min(os.cpu_count() or 1, 8))
"""Threads labelling blocks of cells (one per core; each runs FAISS single-threaded)."""


def _search_pool() -> ThreadPoolExecutor:
    """The process-wide pool of single-threaded FAISS workers (one per core, made once)."""
    if not _POOL:
        _POOL.append(
            ThreadPoolExecutor(
                max_workers=SEARCH_WORKERS,
                thread_name_prefix="earthvec-knn",
                initializer=faiss.omp_set_num_threads,
                initargs=(1,),
            )
        )
    return _POOL[0]


def embedding_chunks(table: pa.Table) -> list[np.ndarray]:
    """The ``embedding`` column as (n_i, D) float32 matrices, one per Arrow chunk (no copy)."""
    col = table.column(contract.EMBEDDING)
    dim = col.type.list_size
    return [
        np.asarray(ch.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
        for ch in col.chunks
    ]


def knn_vote(
    seed_vectors: np.ndarray, seed_classes: np.ndarray, n_classes: int, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted kNN vote (exact).

    Each query takes its ``k`` most similar seeds; votes weigh ``(1 + cos) / 2``.

    Args:
        seed_vectors: (S, D) unit vectors of the seeds.
        seed_classes: (S,) class numbers in ``[0, n_classes)``.
        n_classes: number of classes.
        queries: (N, D) unit vectors to label.
        k: neighbours per query (capped at S).

    Returns:
        Predicted class numbers (N,) and confidences (N,) in (0, 1].
    """
    return SeedVoter(seed_vectors, seed_classes, n_classes, k)(queries)


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
        parts = [p for p in parts if any(_overlaps(p, lo, hi, src.resolution) for lo, hi in ranges)]
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
    schema = prediction_schema()
    for table, vectors in _prefetch(_partition_tables(src, flt, progress)):
        pred, conf = voter(vectors)
        out = pa.Table.from_arrays(
            [
                table.column(contract.H3),
                table.column(contract.LAT),
                table.column(contract.LON),
                table.column(contract.GEOMETRY),
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


def _overlaps(part: str, lo: int, hi: int, res: int) -> bool:
    plo, phi = h3grid.descendant_range(h3grid.parse_cell(part), res)
    return plo <= hi and lo <= phi


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

    Raises:
        SeedError: unusable seeds (none in the DB, one class only, bad rows).
        QueryError: a bad filter.
    """
    if k < 1:
        raise SeedError(f"k={k}: use at least one neighbour")
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
            tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")
            writer = _map_writer(tmp, src, result)
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
            os.replace(tmp, out_path)
            result.out = out_path
            copy = src.db / contract.PREDICTIONS_DIR / out_path.name
            if copy.resolve() != out_path.resolve():
                _copy_atomic(out_path, copy)
            result.copy = copy
            contract.write_table_atomic(
                s.table(), src.db / contract.LABELS_DIR / f"{Path(seeds).stem}.parquet"
            )
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return result


label_map = label_db
"""Alias: the planet-scale kNN label map (see :func:`label_db`)."""


def _map_writer(path: Path, src: MapSource, result: LabelResult) -> pq.ParquetWriter:
    # dictionary-encode only the label: h3, geometry and scores are (nearly) unique, and
    # trying dictionaries on them costs more time than the file saves
    return pq.ParquetWriter(
        path, _schema_with_meta(src, result), compression=MAP_COMPRESSION, use_dictionary=[LABEL]
    )


def _schema_with_meta(vi: MapSource, result: LabelResult) -> pa.Schema:
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

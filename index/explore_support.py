"""In-memory views of a database for interactive exploration (no Streamlit, no torch).

The explorer keeps every row of a database in memory as numpy arrays (attributes plus
vectors): a 2M-row, 64-d database is ~0.5 GB of float32 vectors. On top of those arrays this
module offers the operations the explorer's pages need and that are plain array work:

* :func:`load_rows` reads all rows (every date of every cell) once;
* :func:`filter_mask` applies a search :class:`~index.filters.Filter` (region, box, time)
  to the in-memory rows;
* :func:`query_vector` combines positive and negative examples into one query;
* :func:`exact_top_k` ranks rows by inner product (the exact oracle, numpy);
* :func:`parent_ids` maps cells to a coarser resolution with integer bit operations
  (vectorised; used to draw aggregated parents when too many cells are in view);
* :func:`change_table` compares the vectors of one cell at different dates.

Similarity is the inner product of unit vectors (cosine similarity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedder import contract
from embedder.errors import QueryError, SeedError
from index.filters import Filter

NO_TIME = np.iinfo(np.int64).min
"""Stored in :attr:`Rows.time_us` for rows without a datetime."""

_RES_SHIFT = 52
_DIGIT_BITS = 3
_MAX_RES = 15


@dataclass
class Rows:
    """Every row of a database, column by column.

    Attributes:
        h3: cell ids (uint64), one per row; a cell repeats once per date.
        lat, lon: cell centres in degrees.
        time_us: datetime as int64 microseconds since the epoch, :data:`NO_TIME` if unknown.
        valid_fraction: share of valid pixels behind each vector.
        sensors, modalities, source: provenance lists per row (Arrow arrays, read lazily
            with :meth:`provenance`, so millions of rows cost no Python objects).
        vectors: (N, D) float32 unit vectors.
        latest: row numbers of the most recent row of each cell (sorted by cell id); the
            rows a similarity search ranks.
        model: ``name@version`` of the vectors.
        resolution: H3 resolution of the cells.
    """

    h3: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    time_us: np.ndarray
    valid_fraction: np.ndarray
    sensors: pa.ChunkedArray
    modalities: pa.ChunkedArray
    source: pa.ChunkedArray
    vectors: np.ndarray
    latest: np.ndarray
    model: str
    resolution: int

    def __len__(self) -> int:
        return len(self.h3)

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return int(self.vectors.shape[1])

    @property
    def latest_cells(self) -> np.ndarray:
        """Cell ids of :attr:`latest` (sorted; computed once)."""
        cached = self.__dict__.get("_latest_cells")
        if cached is None:
            cached = self.h3[self.latest]
            self.__dict__["_latest_cells"] = cached
        return cached

    def provenance(self, column: str, idx: np.ndarray | list[int]) -> list[list[str]]:
        """The ``sensors``, ``modalities`` or ``source`` lists of rows ``idx``."""
        arr: pa.ChunkedArray = getattr(self, column)
        return arr.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()

    def row_of_cell(self, cell: int) -> int:
        """Row number of the most recent row of ``cell``.

        Raises:
            QueryError: when the database has no row for ``cell``.
        """
        cells = self.latest_cells
        j = int(np.searchsorted(cells, np.uint64(cell)))
        if j >= len(cells) or int(cells[j]) != int(cell):
            raise QueryError(
                f"cell {int(cell):x} is not in this database; pick a cell shown on the map "
                "or a point inside the covered area"
            )
        return int(self.latest[j])

    def rows_of_cell(self, cell: int) -> np.ndarray:
        """All row numbers of ``cell``, oldest first."""
        rows = np.flatnonzero(self.h3 == np.uint64(cell))
        return rows[np.argsort(self.time_us[rows], kind="stable")]

    def datetime_text(self, row: int) -> str:
        """The row's datetime as ISO text, or an empty string."""
        t = int(self.time_us[row])
        if t == NO_TIME:
            return ""
        return datetime.fromtimestamp(t / 1e6, tz=timezone.utc).isoformat(timespec="seconds")


def _time_us(table: pa.Table) -> np.ndarray:
    col = table.column(contract.DATETIME).cast(pa.int64())
    return np.asarray(pc.fill_null(col, NO_TIME).to_numpy(), dtype=np.int64)


def latest_rows(h3: np.ndarray, time_us: np.ndarray) -> np.ndarray:
    """Row numbers of the most recent row of each cell, ordered by cell id."""
    if len(h3) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((time_us, h3))
    hs = h3[order]
    last = np.ones(len(hs), dtype=bool)
    last[:-1] = hs[1:] != hs[:-1]
    return order[last].astype(np.int64)


def load_rows(db: str | Path) -> Rows:
    """Read every row of ``db`` (all columns but the geometry) into :class:`Rows`.

    Raises:
        InputNotFoundError: when ``db`` has no embeddings.
        SchemaError, ModelMismatchError: when the files break the contract.
    """
    cols = [
        contract.H3,
        contract.LAT,
        contract.LON,
        contract.DATETIME,
        contract.VALID_FRACTION,
        contract.SENSORS,
        contract.MODALITIES,
        contract.SOURCE,
        contract.EMBEDDING,
    ]
    ds, meta = contract.open_dataset(db)
    table = ds.to_table(columns=cols)
    h3 = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    time_us = _time_us(table)
    return Rows(
        h3=h3,
        lat=np.asarray(table.column(contract.LAT).to_numpy(), dtype=np.float64),
        lon=np.asarray(table.column(contract.LON).to_numpy(), dtype=np.float64),
        time_us=time_us,
        valid_fraction=np.asarray(table.column(contract.VALID_FRACTION).to_numpy(), dtype=np.float32),
        sensors=table.column(contract.SENSORS),
        modalities=table.column(contract.MODALITIES),
        source=table.column(contract.SOURCE),
        vectors=contract.embeddings_matrix(table),
        latest=latest_rows(h3, time_us),
        model=meta.model,
        resolution=meta.h3_resolution,
    )


def parent_ids(cells: np.ndarray, res: int) -> np.ndarray:
    """Parents of H3 cells at the coarser resolution ``res`` (vectorised bit operations).

    An H3 id stores its resolution in bits 52-55 and one 3-bit digit per resolution; the
    parent sets the resolution field to ``res`` and the digits below it to 7 (unused).

    Raises:
        QueryError: when ``res`` is not in 0..15.
    """
    if not 0 <= res <= _MAX_RES:
        raise QueryError(f"H3 resolution {res} is out of range; use 0..15")
    c = np.asarray(cells, dtype=np.uint64)
    c = (c & ~np.uint64(0xF << _RES_SHIFT)) | np.uint64(res << _RES_SHIFT)
    unused = 0
    for r in range(res + 1, _MAX_RES + 1):
        unused |= 0x7 << ((_MAX_RES - r) * _DIGIT_BITS)
    return c | np.uint64(unused)


def attribute_table(rows: Rows) -> pa.Table:
    """The rows' attribute columns as an Arrow table (what :class:`Filter` tests)."""
    t = pa.array(rows.time_us, type=pa.int64())
    t = pc.if_else(pc.equal(t, NO_TIME), pa.scalar(None, pa.int64()), t)
    return pa.table(
        {
            contract.H3: pa.array(rows.h3, type=pa.uint64()),
            contract.LAT: pa.array(rows.lat),
            contract.LON: pa.array(rows.lon),
            contract.DATETIME: t.cast(pa.timestamp("us", tz="UTC")),
            contract.VALID_FRACTION: pa.array(rows.valid_fraction),
        }
    )


def filter_mask(rows: Rows, flt: Filter | None) -> np.ndarray:
    """Boolean mask of the rows meeting ``flt`` (same rules as search: :meth:`Filter.mask`).

    Raises:
        QueryError: a bad filter (validated against the database resolution).
    """
    if flt is None or flt.empty:
        return np.ones(len(rows), dtype=bool)
    flt.validate(rows.resolution)
    return np.asarray(flt.mask(attribute_table(rows), rows.resolution), dtype=bool)


def query_vector(
    vectors: np.ndarray, positives: list[int], negatives: list[int] | None = None, weight: float = 0.5
) -> np.ndarray:
    """One unit query from example rows: mean of positives pushed away from negatives.

    ``q = normalise(mean(pos) - weight * mean(neg))``, the rule of the Earth Index app.

    Raises:
        QueryError: without positives, or when positives and negatives cancel out.
    """
    if not positives:
        raise QueryError("give at least one positive example (click a cell on the map)")
    q = vectors[np.asarray(positives)].mean(axis=0)
    if negatives:
        q = q - weight * vectors[np.asarray(negatives)].mean(axis=0)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-8:
        raise QueryError("the positive and negative examples cancel out; remove some negatives")
    return (q / n).astype(np.float32)


def exact_top_k(
    vectors: np.ndarray, query: np.ndarray, k: int, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` among candidate rows (numpy; the oracle for FAISS).

    Returns:
        ``(rows, scores)``, best first; ties broken by row number.
    """
    cand = np.arange(len(vectors)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if len(cand) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = vectors[cand] @ np.asarray(query, dtype=np.float32)
    k = min(k, len(cand))
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((cand[part], -scores[part]))]
    return cand[order], scores[order].astype(np.float32)


def change_table(rows: Rows) -> dict[str, np.ndarray]:
    """Cells with rows at two or more dates and how much their vectors moved.

    Returns:
        Columns ``h3``, ``first_row``, ``last_row``, ``n_dates``, ``similarity``
        (first vs last date) and ``min_step_similarity`` (lowest similarity between
        consecutive dates), one entry per multi-date cell, least similar first.
    """
    dated = rows.time_us != NO_TIME
    idx = np.flatnonzero(dated)
    out: dict[str, list[float | int]] = {
        "h3": [], "first_row": [], "last_row": [], "n_dates": [], "similarity": [],
        "min_step_similarity": [],
    }
    if len(idx):
        order = idx[np.lexsort((rows.time_us[idx], rows.h3[idx]))]
        hs = rows.h3[order]
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            grp = order[s:e]
            v = rows.vectors[grp]
            steps = np.sum(v[1:] * v[:-1], axis=1)
            out["h3"].append(int(hs[s]))
            out["first_row"].append(int(grp[0]))
            out["last_row"].append(int(grp[-1]))
            out["n_dates"].append(int(e - s))
            out["similarity"].append(float(v[0] @ v[-1]))
            out["min_step_similarity"].append(float(steps.min()))
    sim = np.asarray(out["similarity"], dtype=np.float64)
    order2 = np.argsort(sim, kind="stable")
    return {
        "h3": np.asarray(out["h3"], dtype=np.uint64)[order2],
        "first_row": np.asarray(out["first_row"], dtype=np.int64)[order2],
        "last_row": np.asarray(out["last_row"], dtype=np.int64)[order2],
        "n_dates": np.asarray(out["n_dates"], dtype=np.int64)[order2],
        "similarity": sim[order2].astype(np.float32),
        "min_step_similarity": np.asarray(out["min_step_similarity"], dtype=np.float32)[order2],
    }


@dataclass
class Prediction:
    """kNN labels of rows.

    Attributes:
        rows: the labelled row numbers.
        classes: class names; ``pred`` indexes them.
        pred: predicted class number per row.
        confidence: the winner's share of the similarity-weighted vote, in (0, 1].
        nearest_seed: similarity of each row to its most similar seed.
    """

    rows: np.ndarray
    classes: list[str]
    pred: np.ndarray
    confidence: np.ndarray
    nearest_seed: np.ndarray

    def labels(self) -> np.ndarray:
        """Predicted class names per row."""
        return np.asarray(self.classes, dtype=object)[self.pred]


def predict_rows(
    vectors: np.ndarray,
    rows: np.ndarray,
    seed_rows: np.ndarray,
    seed_labels: list[str],
    k: int,
    chunk: int = 65_536,
) -> Prediction:
    """kNN-label ``rows`` from seed rows with :func:`index.label.knn_vote`, in chunks.

    Raises:
        SeedError: with fewer than two classes among the seeds.
    """
    from index.label import knn_vote

    classes, y = np.unique(np.asarray(seed_labels, dtype=str), return_inverse=True)
    if len(classes) < 2:
        raise SeedError(
            f"labelling needs seeds of at least two classes; all seeds are {classes.tolist()}"
        )
    sv = np.ascontiguousarray(vectors[np.asarray(seed_rows, dtype=np.int64)], dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    pred = np.zeros(len(rows), dtype=np.int64)
    conf = np.zeros(len(rows), dtype=np.float32)
    near = np.zeros(len(rows), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        q = vectors[rows[s : s + chunk]]
        p, c = knn_vote(sv, y, len(classes), q, k)
        pred[s : s + chunk], conf[s : s + chunk] = p, c
        near[s : s + chunk] = (q @ sv.T).max(axis=1)
    return Prediction(rows, [str(c) for c in classes], pred, conf, near)


def suggest_next(pred: Prediction, labelled_rows: np.ndarray, n: int = 5) -> np.ndarray:
    """Rows most worth labelling next (active learning by uncertainty).

    Ranks unlabelled rows by the vote's disagreement (lowest winner share first); ties go
    to the row least similar to any seed (the most novel).

    Returns:
        Up to ``n`` row numbers, most useful first.
    """
    labelled = np.asarray(labelled_rows, dtype=np.int64)
    # only rows at or below the (n + seeds)-th lowest confidence can be among the answers
    m = min(len(pred.rows), n + len(labelled))
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    cut = np.partition(pred.confidence, m - 1)[m - 1]
    cand = np.flatnonzero(pred.confidence <= cut)
    cand = cand[~np.isin(pred.rows[cand], labelled)]
    order = np.lexsort((pred.nearest_seed[cand], pred.confidence[cand]))
    return pred.rows[cand[order[:n]]]


def learning_curve(
    cells: np.ndarray,
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    k: int,
    block_res: int,
    n_folds: int = 5,
    sizes: list[int] | None = None,
    repeats: int = 5,
    seed: int = 0,
) -> list[tuple[int, float, float]]:
    """Spatially cross-validated accuracy against the number of training seeds.

    Seeds are split into spatial blocks (parents at ``block_res``) and folds of whole
    blocks (:func:`index.label.block_folds`). For each size ``n`` and fold, ``n`` seeds
    are drawn at random from the other folds (``repeats`` draws) and the held-out fold is
    labelled with kNN.

    Returns:
        ``(n, mean accuracy, std over draws)`` per size; empty when fewer than two spatial
        blocks exist.
    """
    from index.label import block_folds, knn_vote

    blocks = parent_ids(cells, block_res)
    n_blocks = len(np.unique(blocks))
    if n_blocks < 2:
        return []
    folds = min(n_folds, n_blocks)
    fold = block_folds(blocks, folds)
    classes, y = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    max_train = int(min(np.sum(fold != f) for f in range(folds)))
    if sizes is None:
        sizes = sorted({int(x) for x in np.unique(np.geomspace(2, max(2, max_train), 8).round())})
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        if n > max_train:
            continue
        accs = []
        for _ in range(repeats):
            right = 0
            for f in range(folds):
                train = np.flatnonzero(fold != f)
                test = np.flatnonzero(fold == f)
                pick = rng.choice(train, n, replace=False)
                p, _ = knn_vote(vectors[pick], y[pick], len(classes), vectors[test], k)
                right += int(np.sum(p == y[test]))
            accs.append(right / len(cells))
        out.append((int(n), float(np.mean(accs)), float(np.std(accs))))
    return out


SQL_TIME_LIMIT_S = 10.0
"""Default wall-clock limit of one console query."""


def run_console_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    limit: int = 10_000,
    timeout_s: float = SQL_TIME_LIMIT_S,
) -> tuple[pa.Table, bool]:
    """Run one read-only console statement with a row limit and a time limit.

    Only a single ``SELECT`` (``WITH`` ... ``SELECT``) or ``EXPLAIN`` statement is accepted.
    The connection should come from :func:`index.sql.connect` with ``read_only=True`` (no
    file or network access). A query still running after ``timeout_s`` is interrupted.

    Returns:
        The result (at most ``limit`` rows) and whether rows were cut off.

    Raises:
        QueryError: a rejected statement, a DuckDB error, or the time limit.
    """
    import threading

    from index.sql import run_query

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL failed: {str(exc).strip()}") from exc
    allowed = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)
    if len(statements) != 1 or statements[0].type not in allowed:
        kinds = ", ".join(str(s.type).split(".")[-1] for s in statements) or "nothing"
        raise QueryError(
            f"the console runs one SELECT (or EXPLAIN) statement; got {kinds}. "
            "Use earthvec sql for anything else"
        )
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["result"] = run_query(con, sql, limit=limit)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        con.interrupt()
        t.join(5.0)
        raise QueryError(
            f"the query ran longer than {timeout_s:g} s and was stopped; add a WHERE or "
            "LIMIT, or run it with earthvec sql"
        )
    if "error" in box:
        err = box["error"]
        assert isinstance(err, Exception)
        raise err
    result: tuple[pa.Table, bool] = box["result"]  # type: ignore[assignment]
    return result

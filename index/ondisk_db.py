"""The out-of-core index of a database: built from its published embeddings, searched by cell.

When the vectors of a database do not fit in RAM, :func:`build_db_ondisk` builds the
out-of-core index of :mod:`index.ondisk` from one pinned snapshot of the embeddings: one
shard per ``h3_parent`` partition (the most recent row of each cell, as the in-RAM index
holds; a partition's files are read together so that choice is made), ids = H3 cells as
int64, trained on a uniform sample of all cells.

Crash safety follows the rest of the storage: the build runs in its own folder
``DB/index/ondisk/build-<fingerprint>/`` (named after the snapshot, so a killed build of the
same embeddings resumes its finished shards) and is made current last, by writing
``DB/index/ondisk/current.json`` atomically. Until then the previous record, and the
build it names, stay in force. The record holds the snapshot fingerprint the index was
built from, so :func:`ondisk_state` reports a stale index and :func:`similar_ondisk` refuses
to answer from old vectors, naming the fix (``earthvec index DB --out-of-core``).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from embedder import contract, h3grid
from embedder.contract import ONDISK_BUILD_PREFIX, ONDISK_CURRENT, ondisk_build_dir, ondisk_dir
from embedder.errors import IndexMismatchError, QueryError
from embedder.faults import crash_point
from index.hits import Hits
from index.ondisk import build_ondisk
from index.ondisk_index import OnDiskIndex, open_ondisk, read_manifest
from index.ondisk_plan import DEFAULT_CODES, plan_ondisk
from index.plan_rules import Block
from index.vectors import (
    ATTR_COLUMNS,
    datetime_int,
    latest_positions,
    latest_rows,
    partition_files,
    read_cells,
    read_files,
)

__all__ = [
    "CRASH_SHARD", "OnDiskRecord", "answers_queries", "build_db_ondisk", "open_db_ondisk",
    "ondisk_state", "ondisk_summary", "read_record", "search_ondisk", "similar_ondisk",
]  # fmt: skip

CRASH_SHARD = "ondisk-shard"
"""Crash point reached as each shard starts reading (``EARTHVEC_KILL_AT=ondisk-shard:2``: after
the first shard is done)."""
CRASH_BUILT = "ondisk-built"
"""Crash point after the build is merged, before ``current.json`` makes it current."""
FIX = "earthvec index {db} --out-of-core"


@dataclass(frozen=True)
class OnDiskRecord:
    """``DB/index/ondisk/current.json``: the out-of-core build in force and its origin.

    Attributes:
        folder: the build folder's name (under ``DB/index/ondisk``).
        fingerprint: fingerprint of the snapshot the index was built from.
        generation: that snapshot's generation (0: a folder without a manifest).
        model: the embeddings' model (name and version).
        dim: vector dimension.
        h3_resolution: cell resolution.
        factory: FAISS factory string of the IVF.
        count: vectors (cells) indexed.
        shards: shards (partitions).
        built_at: UTC time the build was made current.
    """

    folder: str
    fingerprint: str
    generation: int
    model: str
    dim: int
    h3_resolution: int
    factory: str
    count: int
    shards: int
    built_at: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OnDiskRecord:
        """From the JSON of ``current.json`` (unknown keys ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@contextmanager
def faiss_chatter_to_stderr() -> Iterator[None]:
    """Send what FAISS's C++ prints to stdout (``OnDiskInvertedLists`` notes) to stderr meanwhile.

    ``earthvec similar --format json`` must print nothing but the results on stdout.
    """
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def record_path(db: str | Path) -> Path:
    """``DB/index/ondisk/current.json``."""
    return ondisk_dir(db) / ONDISK_CURRENT


def read_record(db: str | Path) -> OnDiskRecord | None:
    """The out-of-core build in force, or ``None`` when the database has none."""
    path = record_path(db)
    if not path.exists():
        return None
    return OnDiskRecord.from_dict(json.loads(path.read_text()))


def ondisk_state(db: str | Path) -> str:
    """``"missing"``, ``"fresh"`` or ``"stale"`` (built from other embeddings than the published ones)."""
    rec = read_record(db)
    if rec is None:
        return "missing"
    with contract.pinned(db) as snap:
        return "fresh" if rec.fingerprint == snap.fingerprint else "stale"


def answers_queries(db: str | Path) -> bool:
    """Whether ``earthvec similar`` should answer from the out-of-core index by default.

    True when the database has an out-of-core index (fresh or stale: a stale one is then
    refused with the fix, never replaced by a silent in-RAM build) and no in-RAM index.
    """
    from index.store import index_state

    return read_record(db) is not None and index_state(db) == "missing"


def ondisk_summary(db: str | Path) -> dict[str, Any] | None:
    """What ``earthvec info`` reports: the record plus ``state`` and ``path``; ``None`` when missing."""
    rec = read_record(db)
    if rec is None:
        return None
    return {**asdict(rec), "state": ondisk_state(db), "path": str(ondisk_dir(db) / rec.folder)}


# -- build ---------------------------------------------------------------------------------------


def partition_blocks(files: tuple[str, ...]) -> Iterator[Block]:
    """The one block of a partition: its cells (int64) and their most recent vectors.

    A module-level function of plain arguments, so ``functools.partial`` of it pickles (a
    process pool or a Ray task can run the shard).
    """
    crash_point(CRASH_SHARD)
    yield latest_block(files)


def latest_block(files: tuple[str, ...]) -> Block:
    """A partition's cells (int64) and their most recent vectors (float32), read from its files."""
    table, _ = latest_rows(
        read_files([Path(f) for f in files], [contract.H3, contract.DATETIME, contract.EMBEDDING])
    )
    ids = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64).astype(np.int64)
    return ids, contract.embeddings_matrix(table)


def _count_latest(files: list[Path]) -> int:
    """Cells of a partition (one per cell: its most recent row), reading only two small columns."""
    t = read_files(files, [contract.H3, contract.DATETIME])
    h3 = np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64)
    return len(latest_positions(h3, datetime_int(t)))


def training_sample(parts: list[list[Path]], counts: list[int], size: int, seed: int = 7) -> np.ndarray:
    """A uniform sample (without replacement) of ``size`` cells' vectors over all partitions.

    How many come from each partition is drawn from the multivariate hypergeometric
    distribution of the partitions' cell counts; then that many rows of the partition.
    Memory: one partition plus the sample.
    """
    rng = np.random.default_rng(seed)
    size = min(size, sum(counts))
    picks = rng.multivariate_hypergeometric(np.asarray(counts, dtype=np.int64), size)
    out = []
    for files, pick in zip(parts, picks, strict=True):
        if pick == 0:
            continue
        _, x = latest_block(tuple(str(f) for f in files))
        out.append(x[np.sort(rng.choice(len(x), int(pick), replace=False))])
    return np.concatenate(out)


def _built_nlist(db: Path, rec: OnDiskRecord | None) -> int | None:
    """The ``nlist`` the build in force was planned with."""
    if rec is None:
        return None
    return int(read_manifest(ondisk_dir(db) / rec.folder)["plan"]["nlist"])


def build_db_ondisk(
    db: str | Path,
    *,
    nlist: int | None = None,
    codes: str = DEFAULT_CODES,
    vector_dtype: str = "float32",
    workers: int = 1,
    rebuild: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[OnDiskRecord, bool]:
    """Build the out-of-core index of ``db``'s published embeddings and make it current.

    The caller holds the database's writer lock (``earthvec index`` does), so the pinned
    embeddings stay on disk while the shards read them.

    Args:
        db: database folder.
        nlist: inverted lists (default by size, :func:`index.ondisk_plan.plan_ondisk`).
        codes: codes of the IVF (:data:`index.ondisk_plan.CODES`).
        vector_dtype: dtype of the vectors kept for exact re-ranking.
        workers: processes adding shards at once.
        rebuild: build even when the current index is fresh (so is another ``nlist``).
        log: progress messages.

    Returns:
        The record in force and whether it was built now (False: already up to date).

    Raises:
        InputNotFoundError: no embeddings.
        IndexBuildError: a bad ``nlist`` or ``codes``.
    """
    db = Path(db)
    say = log or (lambda _m: None)
    with contract.pinned(db, contract.load_snapshot(db)) as snap:
        old = read_record(db)
        current = old is not None and (ondisk_dir(db) / old.folder).is_dir()
        same_lists = nlist is None or (current and _built_nlist(db, old) == nlist)
        if old is not None and current and same_lists and not rebuild and old.fingerprint == snap.fingerprint:
            return old, False
        meta = contract.read_meta(db)
        parts = list(partition_files(db).values())
        counts = [_count_latest(files) for files in parts]
        n = sum(counts)
        plan = plan_ondisk(n, meta.dim, codes=codes, nlist=nlist, vector_dtype=vector_dtype)
        say(f"{n:,} cells in {len(parts)} partitions: {plan.factory} ({plan.reason})")
        folder = ondisk_build_dir(db, snap.fingerprint)
        if current and old is not None and old.folder == folder.name:
            folder = folder.with_name(f"{folder.name}-{uuid.uuid4().hex[:8]}")  # never the one in force
        sample = training_sample(parts, counts, plan.train_size)
        shards = [functools.partial(partition_blocks, tuple(str(f) for f in files)) for files in parts]
        with faiss_chatter_to_stderr():
            od = build_ondisk(folder, shards, sample, n=n, plan=plan, workers=workers, log=say)
        crash_point(CRASH_BUILT)
        rec = OnDiskRecord(
            folder=folder.name,
            fingerprint=snap.fingerprint,
            generation=snap.generation,
            model=meta.model,
            dim=meta.dim,
            h3_resolution=meta.h3_resolution,
            factory=plan.factory,
            count=od.ntotal,
            shards=len(parts),
            built_at=contract.utcnow(),
        )
        contract.atomic_write_bytes(record_path(db), json.dumps(asdict(rec), indent=1).encode())
    for other in ondisk_dir(db).glob(f"{ONDISK_BUILD_PREFIX}*"):  # replaced or abandoned builds
        if other.name != rec.folder:
            shutil.rmtree(other, ignore_errors=True)
    return rec, True


# -- search --------------------------------------------------------------------------------------


def open_db_ondisk(db: str | Path) -> tuple[OnDiskIndex, OnDiskRecord]:
    """Open the current out-of-core index of ``db``; only when it indexes the published embeddings.

    Raises:
        IndexMismatchError: the database has no out-of-core index, or it is stale (built from
            other embeddings); both name the command that builds it.
    """
    db = Path(db)
    rec = read_record(db)
    fix = FIX.format(db=db)
    if rec is None:
        raise IndexMismatchError(f"{db} has no out-of-core index; build it: {fix}")
    with contract.pinned(db) as snap:
        if rec.fingerprint != snap.fingerprint:
            raise IndexMismatchError(
                f"the out-of-core index of {db} is stale: built from generation {rec.generation} "
                f"({rec.model}), but the embeddings changed since; rebuild it: {fix} "
                f"(or build the in-RAM index: earthvec index {db})"
            )
    with faiss_chatter_to_stderr():
        return open_ondisk(ondisk_dir(db) / rec.folder), rec


def search_ondisk(
    od: OnDiskIndex, q: np.ndarray, k: int, *, nprobe: int | None = None, k_factor: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each query row: exact inner products and cells (uint64, 0 where missing)."""
    scores, ids = od.search(np.atleast_2d(q), k, nprobe=nprobe, k_factor=k_factor)
    return scores, np.where(ids >= 0, ids, 0).astype(np.uint64)


def cell_rows(db: str | Path, cells: np.ndarray, partition_res: int, columns: list[str]) -> pa.Table | None:
    """The most recent row of each of ``cells`` (those the database holds), sorted by cell; ``None``: none.

    Reads only the row groups holding them (:func:`index.vectors.read_cells`), never every row.
    """
    cells = np.unique(np.asarray(cells, dtype=np.uint64))
    files = partition_files(db)
    key_cols = [contract.H3, contract.DATETIME]
    cols = [*key_cols, *[c for c in columns if c not in key_cols]]
    parents = h3grid.cell_parents(cells, partition_res) if len(cells) else cells
    tables = []
    for p in np.unique(parents):
        key = h3grid.cell_to_str(int(p))
        if key in files:
            tables.append(latest_rows(read_cells(files[key], cells[parents == p], cols))[0])
    t = pa.concat_tables(tables) if tables else None
    if t is None or t.num_rows == 0:
        return None
    return t.take(pa.array(np.argsort(np.asarray(t.column(contract.H3).to_numpy()), kind="stable")))


def similar_ondisk(
    db: str | Path,
    cell: str | int,
    k: int = 10,
    *,
    nprobe: int | None = None,
    k_factor: int | None = None,
) -> pd.DataFrame:
    """The ``k`` cells most similar to ``cell``, from the out-of-core index, as :func:`index.search.similar`.

    The query is the cell's own most recent vector, read from Parquet; the query cell is
    left out of the results (as the in-RAM search does); the attributes are read for the
    ``k`` hits only.

    Returns:
        The columns of :func:`index.search.similar`: ``h3``, ``lat``, ``lon``, ``score``,
        ``rank``, ``datetime``, ``valid_fraction``, ``source``, ``sensors``, ``modalities``.

    Raises:
        QueryError: ``k < 1``, a malformed cell, or a cell the database does not hold.
        IndexMismatchError: no out-of-core index, or a stale one.
    """
    if k < 1:
        raise QueryError(f"k={k}: ask for at least one result")
    db = Path(db)
    with contract.pinned(db):
        od, _ = open_db_ondisk(db)
        meta = contract.read_meta(db)
        c = h3grid.parse_cell(cell)
        if h3grid.cell_resolution(c) != meta.h3_resolution:
            raise QueryError(
                f"cell {h3grid.cell_to_str(c)} has resolution {h3grid.cell_resolution(c)}; the database "
                f"holds cells at resolution {meta.h3_resolution}"
            )
        cols = [*ATTR_COLUMNS, contract.EMBEDDING]
        found = cell_rows(db, np.array([c], dtype=np.uint64), meta.partition_resolution, cols)
        if found is None:
            raise QueryError(f"cell {h3grid.cell_to_str(c)} is not in {db}; pick a cell the database holds")
        q = contract.embeddings_matrix(found)
        scores, cells = search_ondisk(od, q, k + 1, nprobe=nprobe, k_factor=k_factor)
        keep = (cells[0] != np.uint64(c)) & (cells[0] != 0)
        hit_cells, hit_scores = cells[0][keep][:k], scores[0][keep][:k]
        if len(hit_cells) == 0:
            return Hits.none(found, 1).frame(with_query=False)
        attrs = cell_rows(db, hit_cells, meta.partition_resolution, ATTR_COLUMNS)
        if attrs is None or attrs.num_rows != len(hit_cells):
            raise IndexMismatchError(
                f"the out-of-core index of {db} names cells the embeddings lack; "
                f"rebuild it: {FIX.format(db=db)}"
            )
    pos = np.searchsorted(np.asarray(attrs.column(contract.H3).to_numpy(), dtype=np.uint64), hit_cells)
    return Hits(attrs, pos[None, :].astype(np.int64), hit_scores[None, :]).frame(with_query=False)

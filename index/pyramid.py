"""Multi-resolution H3 pyramid: parent-cell aggregates and coarse-to-fine search.

For each coarser resolution ``r`` the pyramid stores one row per parent cell that holds
indexed cells: ``count`` (cells below it), ``embedding`` (the normalised mean of their unit
vectors), ``spread`` (``1 - |mean|``: 0 when all children are identical, up to 1 when they
point in all directions) and the parent's centre and polygon. Files:
``DB/pyramid/res=<r>.parquet`` (GeoParquet), built from the most recent row of each cell.

Coarse-to-fine search ranks the parents at a coarse resolution first, then searches
exactly among the descendants of the best ``n_parents`` (one contiguous id range each).
It is exact inside the chosen parents; its recall against a full search depends on how
well parent means represent their children (see ``spread``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract, h3grid
from embedder.contract.manifest import PYRAMID
from embedder.errors import InputNotFoundError, QueryError, StaleDataError
from embedder.storage import derived_entry, derived_writer, origin, publish_derived
from index.filters import Filter
from index.origin import is_fresh
from index.search import Hits, as_index, top_k
from index.store import VectorIndex
from index.vectors import iter_latest, partition_files

COUNT = contract.COUNT
SPREAD = contract.SPREAD
DEFAULT_LEVELS = 3
PYRAMID_META_KEY = contract.PYRAMID_META_KEY


def aggregate(cells: np.ndarray, vectors: np.ndarray, res: int) -> pa.Table:
    """Parent aggregates at ``res`` of unit ``vectors`` on ``cells`` (one row per parent)."""
    parents = h3grid.cell_parents(cells, res)
    uniq, inv = np.unique(parents, return_inverse=True)
    sums = np.zeros((len(uniq), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, vectors)
    counts = np.bincount(inv, minlength=len(uniq))
    return _level_table(uniq, sums, counts)


def _level_table(parents: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> pa.Table:
    mean = sums / counts[:, None]
    norm = np.linalg.norm(mean, axis=1)
    unit = np.divide(mean, norm[:, None], out=np.zeros_like(mean), where=norm[:, None] > 0)
    lat, lon = h3grid.cell_centres(parents)
    dim = sums.shape[1]
    wkb = pa.array(h3grid.cells_wkb(parents), type=pa.binary())
    return pa.Table.from_arrays(
        [
            pa.array(parents, type=pa.uint64()),
            pa.array(lat),
            pa.array(lon),
            wkb,
            contract.bbox_array(wkb),
            pa.array(counts.astype(np.int64)),
            pa.array(np.clip(1.0 - norm, 0.0, 1.0).astype(np.float32)),
            pa.FixedSizeListArray.from_arrays(pa.array(unit.astype(np.float32).reshape(-1)), dim),
        ],
        schema=contract.pyramid_schema(dim),
    )


def build_pyramid(
    db: str | Path | VectorIndex,
    levels: list[int] | None = None,
    *,
    progress: bool = False,
    wait: bool = True,
) -> dict[int, Path]:
    """Write parent aggregates of ``db`` at the given resolutions (one partition in memory).

    A writer: it holds the database lock, reads the current generation and records it
    (generation, embeddings fingerprint, model) in each level's metadata and, in a
    database with a manifest, publishes the levels there.

    Args:
        db: database folder or open index.
        levels: resolutions coarser than the database; default the three next coarser.
        progress: show a progress bar over partitions.
        wait: wait for another writer (False: fail at once with DatabaseLockedError).

    Returns:
        Resolution -> written file.

    Raises:
        QueryError: a level not coarser than the database resolution.
        DatabaseLockedError: another writer holds the database and ``wait`` is false.
    """
    vi = as_index(db)
    with derived_writer(vi.db, "earthvec pyramid", wait=wait) as snap:
        out = _build_levels(vi, levels, snap, progress)
        if snap.manifest is not None:
            rels = {r: p.relative_to(vi.db).as_posix() for r, p in out.items()}
            model = vi.model
            entries = {rel: derived_entry(PYRAMID, [rel], snap, model, {"res": r}) for r, rel in rels.items()}
            publish_derived(vi.db, entries, command="earthvec pyramid")
    return out


def _build_levels(
    vi: VectorIndex, levels: list[int] | None, snap: contract.Snapshot, progress: bool
) -> dict[int, Path]:
    res = vi.resolution
    levels = sorted(set(levels or range(max(0, res - DEFAULT_LEVELS), res)), reverse=True)
    bad = [r for r in levels if not 0 <= r < res]
    if bad:
        raise QueryError(f"pyramid levels {bad} must be coarser than the database resolution {res}")
    # a parent at or finer than the partition resolution lies in one partition: stream those;
    # coarser parents span partitions: keep running sums (few of them)
    sums: dict[int, dict[int, np.ndarray]] = {r: {} for r in levels}
    counts: dict[int, dict[int, int]] = {r: {} for r in levels}
    writers: dict[int, tuple[pq.ParquetWriter, Path]] = {}
    dim = vi.dim
    meta = {"model": vi.model, "h3_resolution": res, "created": contract.utcnow(), **origin(snap, vi.model)}
    schema = contract.geo_schema(contract.pyramid_schema(dim), {PYRAMID_META_KEY: json.dumps(meta).encode()})
    out: dict[int, Path] = {}
    try:
        cols = [contract.H3, contract.DATETIME, contract.EMBEDDING]
        parts = partition_files(vi.db)
        it = tqdm(
            iter_latest(vi.db, columns=cols),
            total=len(parts),
            desc="pyramid",
            unit="part",
            disable=not progress,
        )
        for _, table, _ in it:
            cells = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
            vecs = contract.embeddings_matrix(table)
            for r in levels:
                if r >= vi.sidecar.partition_resolution:
                    if r not in writers:
                        path = contract.level_path(vi.db, r)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        tmp = contract.temp_path(path)
                        writers[r] = (pq.ParquetWriter(tmp, schema, compression="zstd"), tmp)
                    writers[r][0].write_table(aggregate(cells, vecs, r))
                    continue
                parents = h3grid.cell_parents(cells, r)
                for p in np.unique(parents):
                    m = parents == p
                    key = int(p)
                    sums[r][key] = sums[r].get(key, np.zeros(dim)) + vecs[m].sum(axis=0, dtype=np.float64)
                    counts[r][key] = counts[r].get(key, 0) + int(m.sum())
        for r in levels:
            path = contract.level_path(vi.db, r)
            if r in writers:
                w, tmp = writers.pop(r)
                w.close()
                contract.publish_file(tmp, path)
            else:
                keys = np.array(sorted(sums[r]), dtype=np.uint64)
                table = _level_table(
                    keys,
                    np.stack([sums[r][int(k)] for k in keys]) if len(keys) else np.zeros((0, dim)),
                    np.array([counts[r][int(k)] for k in keys], dtype=np.int64),
                ).replace_schema_metadata(schema.metadata)
                contract.write_table_atomic(table, path)
            out[r] = path
    finally:
        for w, tmp in writers.values():
            w.close()
            tmp.unlink(missing_ok=True)
    return out


def level_state(db: str | Path, res: int) -> str:
    """``"missing"``, ``"fresh"`` or ``"stale"`` (made from other embeddings or another model)."""
    path = contract.level_path(db, res)
    try:
        fresh = is_fresh(path, PYRAMID_META_KEY, contract.snapshot(db))
    except FileNotFoundError:
        return "missing"
    return "fresh" if fresh else "stale"


def read_level(db: str | Path, res: int) -> pa.Table:
    """One pyramid level, checked against the embeddings it was made from.

    Raises:
        InputNotFoundError: the level was not built.
        StaleDataError: it was made from other embeddings (rebuild it).
    """
    path = contract.level_path(db, res)
    fix = f"earthvec index {db} --pyramid {res} (Python: index.pyramid.build_pyramid(db, [{res}]))"
    state = level_state(db, res)
    if state == "missing":
        raise InputNotFoundError(f"{path} does not exist; build the pyramid first: {fix}")
    if state == "stale":
        raise StaleDataError(
            f"pyramid level {res} of {db} was made from other embeddings than the database holds now; "
            f"rebuild it: {fix}"
        )
    return pq.read_table(path)


def similar_coarse_to_fine(
    db: str | Path | VectorIndex,
    queries: np.ndarray,
    k: int,
    *,
    coarse_res: int,
    n_parents: int = 8,
    exclude: list[list[int]] | None = None,
    flt: Filter | None = None,
) -> Hits:
    """Top ``k`` by searching the best ``n_parents`` parents at ``coarse_res``, then their cells.

    Args:
        db: database folder or open index (its pyramid level ``coarse_res`` must exist).
        queries: (nq, dim) unit vectors.
        k: results per query.
        coarse_res: pyramid level to rank first.
        n_parents: parents searched in full per query.
        exclude: cells to leave out per query.
        flt: region, time and attribute filters applied inside the chosen parents (not a
            ``cells`` filter: the parents are one).

    Returns:
        :class:`index.search.Hits` (exact within the chosen parents).

    Raises:
        QueryError: a ``cells`` filter, or ``n_parents < 1``.
        InputNotFoundError: the pyramid level was not built.
    """
    if flt is not None and flt.cells is not None:
        raise QueryError(
            "coarse-to-fine search chooses its own cells: drop the cells filter or the coarse level"
        )
    if n_parents < 1:
        raise QueryError(f"n_parents={n_parents}: search at least one parent cell")
    vi = as_index(db)
    level = read_level(vi.db, coarse_res)
    pv = contract.embeddings_matrix(level)
    pid = np.asarray(level.column(contract.H3).to_numpy(), dtype=np.uint64)
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, vi.dim)
    rows, scores = [], []
    for i in range(len(q)):
        m = min(n_parents, len(pid))
        best = np.argpartition(-(pv @ q[i]), m - 1)[:m]
        inside = replace(flt or Filter(), cells=[int(c) for c in pid[best]])
        h = top_k(vi, q[i : i + 1], k, inside, [exclude[i] if exclude else []])
        r = np.full(k, -1, dtype=np.int64)
        s = np.zeros(k, dtype=np.float32)
        r[: h.rows.shape[1]], s[: h.rows.shape[1]] = h.rows[0], h.scores[0]
        rows.append(r)
        scores.append(s)
    return Hits(vi.rows, np.stack(rows), np.stack(scores), vi.scalars)

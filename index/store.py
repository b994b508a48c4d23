"""Building, opening and updating the FAISS index stored in ``DB/index``.

``DB/index`` holds ``faiss-<key>.index`` (the FAISS index, ids = H3 cells) and
``rows-<key>.parquet`` (attributes of the indexed rows: the most recent row of each
cell, sorted by cell); the :class:`Sidecar` naming them is published last, in the
manifest (or ``index.json`` in a folder without one), see :mod:`index.publish`. A crash
leaves the previous index in force. Every step reads one pinned snapshot of the
embeddings, so an index never mixes two generations.

Opening compares the sidecar with the database:

* another model, dimension or resolution: :class:`IndexMismatchError` (never searched);
* changed embeddings files (same model): the index is brought up to date, incrementally
  (only the changed partitions are removed and re-added) when the structure supports
  removal, else by a full rebuild.

Who writes: ``earthvec build`` publishes the index with the embeddings, ``earthvec index``
rebuilds it. :func:`open_index` is a reader: a missing or stale index is built in memory
and stored only if the database's writer lock is free at that moment (never waiting);
otherwise the caller searches its private copy and the database is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract, h3grid
from embedder.contract import Sidecar, index_dir
from embedder.errors import IndexMismatchError
from index import factory as fac
from index.publish import new_keys, store
from index.vector_index import (
    DIRECT_MAP,
    RowOrder,
    VectorIndex,
    enable_reconstruct,
    exact_reconstruct,
    row_order,
)
from index.vectors import (
    ATTR_COLUMNS,
    iter_latest,
    partition_files,
)

__all__ = [
    "RowOrder",
    "VectorIndex",
    "build_index",
    "changed_partitions",
    "check_model",
    "enable_reconstruct",
    "exact_reconstruct",
    "index_state",
    "open_index",
    "row_order",
    "update_index",
]

log = logging.getLogger(__name__)

REBUILD_HINT = "rebuild it: earthvec index {db} (or --rebuild-index; Python: open_index(db, rebuild=True))"


def build_index(
    db: str | Path,
    *,
    factory: str | None = None,
    progress: bool = True,
    memory_bytes: int | None = None,
    publish: bool = True,
    wait: bool = True,
) -> VectorIndex:
    """Build the index of ``db`` from scratch and store it in ``DB/index``.

    Two streamed passes over the partitions (three for structures that need training): the
    attributes of each cell's most recent row, then its vectors block by block
    (:func:`index.factory.build_from_blocks`), so memory holds one partition plus the index.

    Args:
        db: database folder.
        factory: FAISS factory string; default :func:`index.factory.choose_factory`.
        progress: show progress bars over partitions.
        memory_bytes: memory budget for the default structure (default: half the free RAM).
        publish: store the index (under the lock); False keeps it in memory only.
        wait: wait for another writer before storing (False: keep it in memory if busy).

    Raises:
        ModelMismatchError: the embeddings mix model versions.
        EarthvecError: FAISS rejects ``factory``, or the vectors do not fit the budget.
    """
    db = Path(db)
    with contract.pinned(db) as snap:
        return _build(db, snap, factory, progress, memory_bytes, publish, wait)


def _build(
    db: Path,
    snap: contract.Snapshot,
    factory: str | None,
    progress: bool,
    memory_bytes: int | None,
    publish: bool,
    wait: bool,
) -> VectorIndex:
    meta = contract.read_meta(db)
    sigs = snap.signatures()
    parts = partition_files(db)
    tables: list[pa.Table] = []
    multi = False
    for _, table, m in tqdm(
        iter_latest(db, columns=ATTR_COLUMNS),
        total=len(parts),
        desc="reading cells",
        unit="part",
        disable=not progress,
    ):
        tables.append(table)
        multi |= m
    rows = _sorted_rows(tables)
    n = rows.num_rows
    chosen = factory or fac.choose_factory(n, meta.dim, memory_bytes)

    def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        it = iter_latest(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])
        for _, t, _ in tqdm(it, total=len(parts), desc="indexing", unit="part", disable=not progress):
            ids = np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64).astype(np.int64)
            yield ids, contract.embeddings_matrix(t)

    built = fac.build_from_blocks(blocks, factory=chosen, n=n, dim=meta.dim, memory_bytes=memory_bytes)
    fstr = fac.normalise_factory(built.plan.factory, meta.dim)
    return _save(db, built.index, rows, meta, fstr, sigs, multi, snap, publish=publish, wait=wait)


def _sorted_rows(tables: list[pa.Table]) -> pa.Table:
    tables = [t.replace_schema_metadata(None) for t in tables]
    rows = pa.concat_tables(tables) if tables else pa.table({c: [] for c in ATTR_COLUMNS})
    ids = np.asarray(rows.column(contract.H3).to_numpy(), dtype=np.uint64)
    if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
        rows = rows.take(pa.array(np.argsort(ids, kind="stable")))
    return rows.combine_chunks()


def _save(
    db: Path,
    index: faiss.Index,
    rows: pa.Table,
    meta: contract.DatasetMeta,
    fstr: str,
    sigs: dict[str, str],
    multi: bool,
    snap: contract.Snapshot,
    *,
    publish: bool,
    wait: bool,
) -> VectorIndex:
    enable_reconstruct(index)
    index_file, rows_file = new_keys()
    sc = Sidecar(
        factory=fstr,
        dim=meta.dim,
        count=int(index.ntotal),
        model=meta.model,
        h3_resolution=meta.h3_resolution,
        partition_resolution=meta.partition_resolution,
        fingerprint=contract.fingerprint(sigs),
        files=sigs,
        index_file=index_file,
        rows_file=rows_file,
        multi_date=multi,
        faiss_version=faiss.__version__,
        built_at=contract.utcnow(),
    )
    if publish and not store(db, index, rows, sc, snap, wait=wait):
        log.info("the index of %s was built in memory and not stored (see index.publish)", db)
    ids = np.asarray(rows.column(contract.H3).to_numpy(), dtype=np.uint64)
    return VectorIndex(db=db, index=index, sidecar=sc, rows=rows, ids=ids)


def check_model(db: Path, sc: Sidecar, meta: contract.DatasetMeta) -> None:
    """Refuse an index built from another model, dimension or resolution.

    Raises:
        IndexMismatchError: naming both models and the fix.
    """
    theirs = (sc.model, sc.dim, sc.h3_resolution)
    ours = (meta.model, meta.dim, meta.h3_resolution)
    if theirs != ours:
        raise IndexMismatchError(
            f"the index in {index_dir(db)} was built with model {sc.model} (dim {sc.dim}, res "
            f"{sc.h3_resolution}) but the embeddings of {db} come from {meta.model} (dim "
            f"{meta.dim}, res {meta.h3_resolution}); a DB built with another model than its index "
            f"cannot be searched: {REBUILD_HINT.format(db=db)}"
        )


def index_state(db: str | Path) -> str:
    """``"missing"``, ``"fresh"``, ``"stale"`` or ``"model mismatch"`` (no loading)."""
    db = Path(db)
    with contract.pinned(db) as snap:
        sc = Sidecar.load(db)
        if sc is None:
            return "missing"
        try:
            check_model(db, sc, contract.read_meta(db))
        except IndexMismatchError:
            return "model mismatch"
        return "fresh" if snap.fingerprint == sc.fingerprint else "stale"


def open_index(
    db: str | Path,
    *,
    rebuild: bool | None = None,
    factory: str | None = None,
    progress: bool = False,
) -> VectorIndex:
    """Open the index of ``db``, building or updating it when needed.

    Args:
        db: database folder.
        rebuild: ``None`` (default) builds a missing index and updates a stale one; ``True``
            always rebuilds (also after a model change); ``False`` never writes and raises
            instead.
        factory: FAISS factory string for a (re)build; a different factory than the stored
            index's forces a rebuild.
        progress: show progress bars while building.

    Raises:
        IndexMismatchError: the index comes from another model, or is missing/stale with
            ``rebuild=False``.
        ModelMismatchError: the embeddings themselves mix model versions.
    """
    db = Path(db)
    with contract.pinned(db) as snap:
        return _open(db, snap, rebuild, factory, progress)


def _open(
    db: Path, snap: contract.Snapshot, rebuild: bool | None, factory: str | None, progress: bool
) -> VectorIndex:
    meta = contract.read_meta(db)
    sc = Sidecar.load(db)
    want = fac.normalise_factory(factory, meta.dim) if factory else None
    hint = REBUILD_HINT.format(db=db)
    if sc is None and rebuild is False:
        raise IndexMismatchError(f"{db} has no index yet; {hint}")
    if sc is not None and want and want != sc.factory and rebuild is False:
        raise IndexMismatchError(f"the index in {index_dir(db)} is {sc.factory}, not {want}; {hint}")
    if sc is None or rebuild or (want and want != sc.factory):
        return build_index(db, factory=want, progress=progress, wait=False)
    check_model(db, sc, meta)
    loaded = load_stored(db, sc)
    if loaded is None:
        if rebuild is False:
            raise IndexMismatchError(f"{index_dir(db)} is incomplete; {hint}")
        log.warning("index files in %s are incomplete; rebuilding", index_dir(db))
        return build_index(db, factory=sc.factory, progress=progress, wait=False)
    if snap.fingerprint == sc.fingerprint:
        return loaded
    if rebuild is False:
        raise IndexMismatchError(
            f"the index in {index_dir(db)} is stale: the embeddings changed since it was built; {hint}"
        )
    return update_index(loaded, snap.signatures(), meta, progress=progress, wait=False)


def load_stored(db: Path, sc: Sidecar) -> VectorIndex | None:
    """The stored index ``sc`` names, or None when its files are missing or incomplete."""
    folder = index_dir(db)
    ipath, rpath = folder / sc.index_file, folder / sc.rows_file
    if not (sc.index_file and ipath.exists() and rpath.exists()):
        return None
    index = faiss.read_index(str(ipath))
    rows = pq.read_table(rpath).combine_chunks()
    if index.ntotal != sc.count or rows.num_rows != sc.count:
        return None
    ids = np.asarray(rows.column(contract.H3).to_numpy(), dtype=np.uint64)
    return VectorIndex(db=db, index=index, sidecar=sc, rows=rows, ids=ids)


def changed_partitions(old: dict[str, str], new: dict[str, str]) -> set[str]:
    """Partitions (hex ids) whose files were added, removed or rewritten."""
    names = {n for n in old.keys() | new.keys() if old.get(n) != new.get(n)}
    return {n.split("/", 1)[0].split("=", 1)[1] for n in names}


def update_index(
    vi: VectorIndex,
    sigs: dict[str, str],
    meta: contract.DatasetMeta,
    *,
    progress: bool = False,
    wait: bool = True,
    publish: bool = True,
) -> VectorIndex:
    """Bring a stale index up to date by re-indexing only the changed partitions.

    The rows of each changed partition are removed (one id-range selector per partition:
    its descendants at the index resolution are contiguous ids) and its current most-recent
    rows added. Structures without removal (HNSW) are rebuilt in full. ``sigs`` are the
    file signatures of the pinned snapshot the update reads.
    """
    with contract.pinned(vi.db) as snap:
        return _update(vi, sigs, meta, snap, progress, wait, publish)


def _update(
    vi: VectorIndex,
    sigs: dict[str, str],
    meta: contract.DatasetMeta,
    snap: contract.Snapshot,
    progress: bool,
    wait: bool,
    publish: bool,
) -> VectorIndex:
    parts = changed_partitions(vi.sidecar.files, sigs)
    vi._order = RowOrder()  # the views into the index below go stale when it changes
    if not fac.supports_remove(vi.index) or not vi.index.is_trained:
        log.info("embeddings changed in %d partition(s); rebuilding the index", len(parts))
        return build_index(vi.db, factory=vi.sidecar.factory, progress=progress, wait=wait, publish=publish)
    log.info("embeddings changed in %d partition(s); updating the index", len(parts))
    index = vi.index
    keep = np.ones(len(vi.ids), dtype=bool)
    for p in parts:  # a partition's cells are one contiguous id range
        lo, hi = h3grid.descendant_range(h3grid.parse_cell(p), vi.resolution)
        keep &= ~((vi.ids >= np.uint64(lo)) & (vi.ids <= np.uint64(hi)))
    gone = np.ascontiguousarray(vi.ids[~keep], dtype=np.int64)
    if len(gone):
        # an IVF direct map only removes by id array (it looks each id up); anything else
        # tests every stored id against the selector, so give it a hash set
        ivf = faiss.try_extract_index_ivf(index)
        direct = ivf is not None and ivf.direct_map.type != DIRECT_MAP.NoMap
        sel_type = faiss.IDSelectorArray if direct else faiss.IDSelectorBatch
        index.remove_ids(sel_type(len(gone), faiss.swig_ptr(gone)))
    tables = [vi.rows.filter(pa.array(keep))]
    multi = vi.sidecar.multi_date
    for _, table, m in iter_latest(vi.db, parts=sorted(parts)):
        multi |= m
        ids = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
        index.add_with_ids(contract.embeddings_matrix(table), ids.astype(np.int64))
        tables.append(table.select(ATTR_COLUMNS))
    rows = _sorted_rows(tables)
    return _save(vi.db, index, rows, meta, vi.sidecar.factory, sigs, multi, snap, publish=publish, wait=wait)

"""Building, opening and updating the FAISS index stored in ``DB/index``.

``DB/index`` holds three files written as one unit: ``faiss-<key>.index`` (the FAISS
index, ids = H3 cells), ``rows-<key>.parquet`` (attributes of the indexed rows: the most
recent row of each cell, sorted by cell) and ``index.json`` (the :class:`Sidecar`, written
last, naming the other two). A crash leaves the previous set in force.

Opening compares the sidecar with the database:

* another model, dimension or resolution: :class:`IndexMismatchError` (never searched);
* changed embeddings files (same model): the index is brought up to date, incrementally
  (only the changed partitions are removed and re-added) when the structure supports
  removal, else by a full rebuild.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from embedder import contract, h3grid
from embedder.contract import Sidecar, file_signatures, fingerprint, index_dir
from embedder.errors import IndexMismatchError, QueryError
from index import factory as fac
from index.vectors import (
    ATTR_COLUMNS,
    iter_latest,
    latest_rows,
    partition_files,
    read_files,
    scalar_columns,
)

log = logging.getLogger(__name__)

_DIRECT_MAP: Any = faiss.DirectMap  # type: ignore[attr-defined]  # missing from the stubs
REBUILD_HINT = "delete {dir} or pass --rebuild-index (Python: open_index(db, rebuild=True))"


@dataclass
class VectorIndex:
    """An open index with the attributes of its rows.

    Attributes:
        db: database folder.
        index: the FAISS index (ids = H3 cells as int64).
        sidecar: what the index was built from.
        rows: attributes of the indexed rows (:data:`index.vectors.ATTR_COLUMNS`), sorted by cell.
        ids: the indexed cells as sorted uint64 (same order as ``rows``).
    """

    db: Path
    index: faiss.Index
    sidecar: Sidecar
    rows: pa.Table
    ids: np.ndarray
    _gpu: Any = field(default=None, repr=False)
    _exact: bool | None = field(default=None, repr=False)
    _scalars: dict[str, np.ndarray] | None = field(default=None, repr=False)
    _order: RowOrder | None = field(default=None, repr=False)

    @property
    def row_order(self) -> RowOrder:
        """The index without its id map when its internal ids are the row positions (cached)."""
        if self._order is None:
            self._order = row_order(self.index, self.ids)
        return self._order

    @property
    def scalars(self) -> dict[str, np.ndarray]:
        """Scalar columns of :attr:`rows` as numpy arrays (cached; for fast result tables)."""
        if self._scalars is None:
            self._scalars = scalar_columns(self.rows)
        return self._scalars

    @property
    def dim(self) -> int:
        """Vector length."""
        return self.sidecar.dim

    @property
    def resolution(self) -> int:
        """H3 resolution of the indexed cells."""
        return self.sidecar.h3_resolution

    @property
    def model(self) -> str:
        """``name@version`` of the indexed embeddings."""
        return self.sidecar.model

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def exact_vectors(self) -> bool:
        """Whether vectors come from the index itself (else from Parquet)."""
        if self._exact is None:
            self._exact = exact_reconstruct(self.index)
        return self._exact

    def positions(self, cells: np.ndarray) -> np.ndarray:
        """Row positions of ``cells`` in :attr:`rows`, -1 where a cell is not indexed."""
        cells = np.asarray(cells, dtype=np.uint64)
        pos = np.searchsorted(self.ids, cells)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (len(self.ids) > 0) & (self.ids[pos] == cells)
        return np.where(found, pos, -1)

    def contains(self, cell: int) -> bool:
        """Whether ``cell`` is indexed."""
        return bool(self.positions(np.array([cell], dtype=np.uint64))[0] >= 0)

    def vectors(self, cells: np.ndarray) -> np.ndarray:
        """The indexed (most recent) vectors of ``cells`` as (n, dim) float32.

        Raises:
            QueryError: when a cell is not indexed.
        """
        cells = np.asarray(cells, dtype=np.uint64)
        missing = cells[self.positions(cells) < 0]
        if len(missing):
            raise QueryError(
                f"cell {h3grid.cell_to_str(int(missing[0]))} is not in the database {self.db}; "
                'pick a cell from the database (earthvec sql DB "SELECT h3 FROM embeddings")'
            )
        if self.row_order.matrix is not None:
            return self.row_order.matrix[self.positions(cells)]
        if self.exact_vectors:
            return np.asarray(self.index.reconstruct_batch(cells.astype(np.int64)), dtype=np.float32)
        return self._vectors_from_parquet(cells)

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """Vectors of the rows at ``positions`` of :attr:`rows` (a view for one contiguous run)."""
        m = self.row_order.matrix
        if m is None:
            return self.vectors(self.ids[positions])
        if len(positions) and positions[-1] - positions[0] == len(positions) - 1:
            return m[int(positions[0]) : int(positions[-1]) + 1]  # sorted and contiguous
        return m[positions]

    def _vectors_from_parquet(self, cells: np.ndarray) -> np.ndarray:
        parents = h3grid.cell_parents(cells, self.sidecar.partition_resolution)
        files = partition_files(self.db)
        out = np.zeros((len(cells), self.dim), dtype=np.float32)
        for p in np.unique(parents):
            key = h3grid.cell_to_str(int(p))
            want = cells[parents == p]
            flt = pc.field(contract.H3).isin(pa.array(want, type=pa.uint64()))
            table, _ = latest_rows(
                read_files(files.get(key, []), [contract.H3, contract.DATETIME, contract.EMBEDDING], flt)
            )
            got = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
            vecs = contract.embeddings_matrix(table)
            for c, v in zip(got, vecs, strict=True):
                out[cells == c] = v
        return out

    def search(self, queries: np.ndarray, k: int, sel: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search: ``(scores, cell ids)`` of shape (nq, k); id -1 pads missing hits."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), len(self)))
        gpu = self._gpu_index() if sel is None else None
        if gpu is not None:
            return gpu.search(q, k)
        return self.index.search(q, k, params=fac.search_params(self.index, k, sel))

    def search_rows(
        self, queries: np.ndarray, k: int, span: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` as ``(scores, row positions of rows)``, -1 padding missing hits.

        When the index stores its rows in row order (:attr:`row_order`), the inner index is
        searched directly and its internal ids are the positions: no id translation. ``span``
        ``(a, b)`` restricts the search to rows ``a <= row < b`` (an id range).
        """
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = max(1, min(int(k), len(self)))
        inner = self.row_order.index
        if inner is not None and (span is not None or self._gpu_index() is None):
            sel = faiss.IDSelectorRange(span[0], span[1]) if span is not None else None
            return inner.search(q, k, params=self.row_order.params(k, sel))
        sel = None
        if span is not None:
            sel = faiss.IDSelectorRange(int(self.ids[span[0]]), int(self.ids[span[1] - 1]) + 1)
        scores, ids = self.search(q, k, sel=sel)
        return scores, np.where(ids >= 0, self.positions(np.maximum(ids, 0).astype(np.uint64)), -1)

    def _gpu_index(self) -> Any:
        """A GPU copy of an exact index when FAISS sees a GPU (made once), else ``None``."""
        if self._gpu is None:
            self._gpu = False
            if fac.gpu_count() > 0 and fac.is_exact(self.sidecar.factory):
                try:
                    self._gpu = fac.to_gpu(self.index)
                except (RuntimeError, AttributeError) as exc:  # structure not supported there
                    log.info("searching on the CPU: %s", str(exc).splitlines()[0])
        return self._gpu or None


@dataclass(frozen=True)
class RowOrder:
    """An id-mapped index whose internal ids equal the row positions (built in row order).

    Attributes:
        index: the inner FAISS index (search it to get row positions), or ``None``.
        matrix: zero-copy (n, dim) view of its raw float32 vectors in row order (Flat and
            HNSW-Flat), or ``None``.
        graph: the inner index's HNSW graph (its ``efSearch`` is read at each search), or
            ``None``.
    """

    index: Any = None
    matrix: np.ndarray | None = None
    graph: Any = None

    def params(self, k: int, sel: Any = None) -> Any:
        """Search parameters: the selector, and ``efSearch`` raised to ``k`` where needed."""
        if self.graph is not None:
            ef = self.graph.efSearch
            if sel is None and ef >= k:
                return None
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(ef, k))  # type: ignore[attr-defined]
        return fac.search_params(self.index, k, sel) if sel is not None else None


def row_order(index: faiss.Index, ids: np.ndarray) -> RowOrder:
    """The :class:`RowOrder` of ``index`` over the sorted cells ``ids`` (empty when not in order).

    Indexes are built from rows sorted by cell, so an ``IDMap`` wrapper's internal ids are
    the row positions until an incremental update appends out of order; that is checked
    here, not assumed.
    """
    if not isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2) or index.ntotal != len(ids):
        return RowOrder()
    if not np.array_equal(faiss.vector_to_array(index.id_map), ids.astype(np.int64)):
        return RowOrder()
    inner = faiss.downcast_index(index.index)
    graph = inner.hnsw if isinstance(inner, faiss.IndexHNSW) else None
    flat = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSWFlat) else inner
    matrix = None
    if type(flat) in (faiss.IndexFlat, faiss.IndexFlatIP) and flat.ntotal == len(ids):
        ptr = flat.get_xb()  # type: ignore[attr-defined]  # IndexFlat's, missing from the stubs
        matrix = faiss.rev_swig_ptr(ptr, flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
    return RowOrder(index=inner, matrix=matrix, graph=graph)


def build_index(
    db: str | Path,
    *,
    factory: str | None = None,
    progress: bool = True,
    memory_bytes: int | None = None,
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

    Raises:
        ModelMismatchError: the embeddings mix model versions.
        EarthvecError: FAISS rejects ``factory``, or the vectors do not fit the budget.
    """
    db = Path(db)
    meta = contract.read_meta(db)
    sigs = file_signatures(db)
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
    return _save(db, built.index, rows, meta, fstr, sigs, multi)


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
) -> VectorIndex:
    enable_reconstruct(index)
    key = uuid.uuid4().hex[:12]
    folder = index_dir(db)
    sc = Sidecar(
        factory=fstr,
        dim=meta.dim,
        count=int(index.ntotal),
        model=meta.model,
        h3_resolution=meta.h3_resolution,
        partition_resolution=meta.partition_resolution,
        fingerprint=fingerprint(sigs),
        files=sigs,
        index_file=f"faiss-{key}.index",
        rows_file=f"rows-{key}.parquet",
        multi_date=multi,
        faiss_version=faiss.__version__,
        built_at=contract.utcnow(),
    )
    contract.atomic_write_bytes(folder / sc.index_file, faiss.serialize_index(index).tobytes())
    contract.write_table_atomic(rows, folder / sc.rows_file)
    sc.save(db)
    for old in [*folder.glob("faiss-*.index"), *folder.glob("rows-*.parquet")]:
        if old.name not in (sc.index_file, sc.rows_file):
            old.unlink(missing_ok=True)
    ids = np.asarray(rows.column(contract.H3).to_numpy(), dtype=np.uint64)
    return VectorIndex(db=db, index=index, sidecar=sc, rows=rows, ids=ids)


def enable_reconstruct(index: faiss.Index) -> None:
    """Give IVF-Flat indexes an id hash map so ``reconstruct`` returns the exact vectors."""
    ivf = faiss.try_extract_index_ivf(index)
    if (
        ivf is not None
        and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
        and ivf.direct_map.type == _DIRECT_MAP.NoMap
    ):
        ivf.set_direct_map_type(_DIRECT_MAP.Hashtable)


def exact_reconstruct(index: faiss.Index) -> bool:
    """Whether ``reconstruct`` of ``index`` gives the stored float32 vectors unchanged."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexFlat | faiss.IndexHNSWFlat):
        return True
    ivf = faiss.try_extract_index_ivf(index)
    return (
        ivf is not None
        and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
        and ivf.direct_map.type != _DIRECT_MAP.NoMap
    )


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
            f"cannot be searched: {REBUILD_HINT.format(dir=index_dir(db))}"
        )


def index_state(db: str | Path) -> str:
    """``"missing"``, ``"fresh"``, ``"stale"`` or ``"model mismatch"`` (no loading)."""
    db = Path(db)
    sc = Sidecar.load(db)
    if sc is None:
        return "missing"
    try:
        check_model(db, sc, contract.read_meta(db))
    except IndexMismatchError:
        return "model mismatch"
    return "fresh" if fingerprint(file_signatures(db)) == sc.fingerprint else "stale"


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
    meta = contract.read_meta(db)
    sc = Sidecar.load(db)
    want = fac.normalise_factory(factory, meta.dim) if factory else None
    hint = REBUILD_HINT.format(dir=index_dir(db))
    if sc is None and rebuild is False:
        raise IndexMismatchError(f"{db} has no index yet; {hint}")
    if sc is not None and want and want != sc.factory and rebuild is False:
        raise IndexMismatchError(f"the index in {index_dir(db)} is {sc.factory}, not {want}; {hint}")
    if sc is None or rebuild or (want and want != sc.factory):
        return build_index(db, factory=want, progress=progress)
    check_model(db, sc, meta)
    sigs = file_signatures(db)
    loaded = _load(db, sc)
    if loaded is None:
        if rebuild is False:
            raise IndexMismatchError(
                f"{index_dir(db)} is incomplete; {REBUILD_HINT.format(dir=index_dir(db))}"
            )
        log.warning("index files in %s are incomplete; rebuilding", index_dir(db))
        return build_index(db, factory=sc.factory, progress=progress)
    if fingerprint(sigs) == sc.fingerprint:
        return loaded
    if rebuild is False:
        raise IndexMismatchError(
            f"the index in {index_dir(db)} is stale: the embeddings changed since it was built; "
            f"{REBUILD_HINT.format(dir=index_dir(db))}"
        )
    return update_index(loaded, sigs, meta, progress=progress)


def _load(db: Path, sc: Sidecar) -> VectorIndex | None:
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
    vi: VectorIndex, sigs: dict[str, str], meta: contract.DatasetMeta, *, progress: bool = False
) -> VectorIndex:
    """Bring a stale index up to date by re-indexing only the changed partitions.

    The rows of each changed partition are removed (one id-range selector per partition:
    its descendants at the index resolution are contiguous ids) and its current most-recent
    rows added. Structures without removal (HNSW) are rebuilt in full.
    """
    parts = changed_partitions(vi.sidecar.files, sigs)
    vi._order = RowOrder()  # the views into the index below go stale when it changes
    if not fac.supports_remove(vi.index) or not vi.index.is_trained:
        log.info("embeddings changed in %d partition(s); rebuilding the index", len(parts))
        return build_index(vi.db, factory=vi.sidecar.factory, progress=progress)
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
        direct = ivf is not None and ivf.direct_map.type != _DIRECT_MAP.NoMap
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
    return _save(vi.db, index, rows, meta, vi.sidecar.factory, sigs, multi)

"""An open FAISS index and the rows it holds: :class:`VectorIndex` (no building, no I/O policy).

Built, opened and updated by :mod:`index.store`. The index is filled in cell order, so its
internal ids are row numbers (:class:`RowOrder`): search skips the id map, and a region (one
id range) is a contiguous slice of the stored vectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedder import contract, h3grid
from embedder.contract import Sidecar
from embedder.errors import QueryError
from index import factory as fac
from index.vectors import latest_rows, partition_files, read_files, scalar_columns

DIRECT_MAP: Any = faiss.DirectMap  # type: ignore[attr-defined]  # missing from the stubs
log = logging.getLogger(__name__)


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


def enable_reconstruct(index: faiss.Index) -> None:
    """Give IVF-Flat indexes an id hash map so ``reconstruct`` returns the exact vectors."""
    ivf = faiss.try_extract_index_ivf(index)
    if (
        ivf is not None
        and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
        and ivf.direct_map.type == DIRECT_MAP.NoMap
    ):
        ivf.set_direct_map_type(DIRECT_MAP.Hashtable)


def exact_reconstruct(index: faiss.Index) -> bool:
    """Whether ``reconstruct`` of ``index`` gives the stored float32 vectors unchanged."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexFlat | faiss.IndexHNSWFlat):
        return True
    ivf = faiss.try_extract_index_ivf(index)
    return (
        ivf is not None
        and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFlat)
        and ivf.direct_map.type != DIRECT_MAP.NoMap
    )

"""Build FAISS indexes from a stream of vector blocks: make, train, fill, search parameters.

Vectors arrive as blocks from a re-iterable source (:func:`parquet_blocks` reads a database's
Parquet files batch by batch), so the whole table is never in RAM twice: pass one counts rows
and keeps a uniform training sample, pass two adds blocks. Ids are the rows' H3 cells (int64).
With a CUDA build of FAISS and a GPU, k-means training runs on the GPU. The structure is chosen
in :mod:`index.plan`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedder import contract
from embedder.errors import IndexMismatchError
from index.plan import (
    IndexPlan,
    _nlist_of,
    _strip_ids,
    check_factory,
    nprobe_for,
    plan_index,
)
from index.plan_rules import (
    FEW_ITER,
    FEW_ITER_MIN_NLIST,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    MAX_TRAIN,
    REFINE_K_FACTOR,
    TRAIN_PER_LIST,
    Block,
    BlockSource,
    IndexBuildError,
)


def gpu_available() -> bool:
    """True when the FAISS build has CUDA support and sees a GPU (see :mod:`index.gpu`)."""
    return gpu_count() > 0


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 for faiss-cpu)."""
    from index import gpu

    return gpu.gpu_count()


def to_gpu(index: Any) -> Any:
    """A GPU copy of ``index`` on all GPUs (for exact search); the CPU index stays the reference."""
    import faiss

    return faiss.index_cpu_to_all_gpus(index)


def normalise_factory(factory: str, dim: int = 8) -> str:
    """Canonical form of a factory string: no spaces, ``IDMap2,`` in front unless native ids.

    IVF structures (also behind ``OPQ``/``PCA`` transforms) store the ids in their inverted
    lists; anything else (``Flat``, ``HNSW32``, ``Refine(...)``) gets an ``IDMap2`` wrapper so
    ids are H3 cells. ``dim`` only matters for strings whose components need divisibility.

    Raises:
        IndexBuildError: when FAISS rejects the string.
    """
    import faiss

    inner = _strip_ids(factory.replace(" ", ""))
    if not inner:
        raise IndexBuildError(f"empty factory string {factory!r}; give e.g. 'Flat' or 'IVF4096,Flat'")
    d = dim if dim > 8 else _dim_for(inner)
    check_factory(inner, d)
    index = faiss.index_factory(d, inner, faiss.METRIC_INNER_PRODUCT)
    if isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return inner if isinstance(index, faiss.IndexIVF) else f"IDMap2,{inner}"


def _dim_for(factory: str) -> int:
    """A dimension every PQ/OPQ/PCA component of ``factory`` accepts (for checking only)."""
    nums = [int(x) for x in re.findall(r"(?:PQ|OPQ|PCAR?)(\d+)", factory)] or [1]
    return int(np.lcm.reduce(np.array(nums + [8], dtype=np.int64))) * 2


def new_index(factory: str, dim: int) -> Any:
    """An empty inner-product index for a factory string, taking int64 ids (H3 cells).

    The string is normalised first (:func:`normalise_factory`); IVF structures start with
    ``nprobe`` from :func:`nprobe_for`, HNSW with ``efSearch`` 64 (both are saved with the
    index; :func:`calibrate` tunes them).
    """
    import faiss

    fstr = normalise_factory(factory, dim)
    index = faiss.index_factory(dim, fstr, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe_for(ivf.nlist)
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    refine = _refine_of(index)
    if refine is not None:
        refine.k_factor = REFINE_K_FACTOR
    return index


def _refine_of(index: Any) -> Any:
    import faiss

    inner = _inner(index)
    return inner if isinstance(inner, faiss.IndexRefine) else None


def _hnsw_of(index: Any) -> Any:
    import faiss

    inner = _inner(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def make_index(factory: str, dim: int) -> Any:
    """Alias of :func:`new_index`."""
    return new_index(factory, dim)


def is_exact(factory: str) -> bool:
    """Whether searches of this structure are exact (brute force over raw vectors)."""
    return _strip_ids(factory.replace(" ", "")) == "Flat"


def stores_exact_vectors(factory: str) -> bool:
    """Whether ``reconstruct`` returns the original float32 vectors (Flat, HNSW<M>[,Flat])."""
    inner = _strip_ids(factory.replace(" ", ""))
    return inner == "Flat" or re.fullmatch(r"HNSW\d+(,Flat)?", inner) is not None


def supports_remove(index: Any) -> bool:
    """Whether ``remove_ids`` works on ``index`` (Flat and IVF Flat/PQ/SQ; not HNSW, fast-scan, refine)."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    if isinstance(inner, faiss.IndexFlat):
        return True
    fast_scan = getattr(faiss, "IndexIVFFastScan", None)
    return isinstance(inner, faiss.IndexIVF) and not (fast_scan and isinstance(inner, fast_scan))


def search_params(index: Any, k: int, sel: Any = None) -> Any:
    """Search parameters that keep the index's own ``nprobe``/``efSearch`` and add a selector.

    ``efSearch`` is raised to ``k`` at least. Returns ``None`` when plain search is right.
    """
    import faiss as _faiss

    faiss: Any = _faiss  # the parameter classes are missing from faiss's type stubs
    refine = _refine_of(index)
    if refine is not None:  # IndexRefine takes only its own parameter class
        if sel is None:
            return None
        if isinstance(index, faiss.IndexIDMap):  # the base sees internal ids: translate
            sel = faiss.IDSelectorTranslated(faiss.downcast_index(index).id_map, sel)
        base_ivf = faiss.try_extract_index_ivf(refine.base_index)
        base = (
            faiss.SearchParametersIVF(sel=sel, nprobe=base_ivf.nprobe)
            if base_ivf is not None
            else faiss.SearchParameters(sel=sel)
        )
        params = faiss.IndexRefineSearchParameters(k_factor=refine.k_factor, base_index_params=base)
        params.referenced_objects = [base, sel]  # SWIG keeps raw pointers: keep them alive
        return params
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return faiss.SearchParametersIVF(sel=sel, nprobe=ivf.nprobe) if sel is not None else None
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        ef = max(hnsw.hnsw.efSearch, k)
        if sel is None and ef == hnsw.hnsw.efSearch:
            return None
        return (
            faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            if sel
            else faiss.SearchParametersHNSW(efSearch=ef)
        )
    return faiss.SearchParameters(sel=sel) if sel is not None else None


def sample_blocks(blocks: Iterable[Block], size: int, seed: int = 0) -> tuple[int, int, np.ndarray]:
    """One pass: count rows and keep a uniform random sample of ``size`` vectors.

    Each row gets a random key; the ``size`` smallest keys survive (a vectorised reservoir),
    so memory stays at one block plus the sample.

    Returns:
        ``(n_rows, dim, sample)`` (the sample holds ``min(size, n_rows)`` rows).
    """
    rng = np.random.default_rng(seed)
    keys = np.empty(0, dtype=np.float64)
    keep: np.ndarray | None = None
    n = 0
    dim = 0
    for _ids, x in blocks:
        x = np.asarray(x, dtype=np.float32)
        dim = x.shape[1]
        n += len(x)
        if size <= 0:
            continue
        k = rng.random(len(x))
        keys = np.concatenate([keys, k])
        keep = x.copy() if keep is None else np.concatenate([keep, x])
        if len(keys) > size:
            top = np.argpartition(keys, size - 1)[:size]
            keys, keep = keys[top], keep[top]
    return n, dim, (keep if keep is not None else np.empty((0, dim), dtype=np.float32))


def train_size_for(factory: str, n: int) -> int:
    """Training sample size: ``TRAIN_PER_LIST`` per IVF list (or 65,536 for PQ/SQ), capped."""
    nlist = _nlist_of(factory)
    want = nlist * TRAIN_PER_LIST if nlist else (65_536 if re.search(r"PQ|SQ", factory) else 0)
    return int(min(n, MAX_TRAIN, want))


def _train(index: Any, sample: np.ndarray, use_gpu: bool) -> None:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and ivf.nlist >= FEW_ITER_MIN_NLIST:
        ivf.cp.niter = FEW_ITER
    if use_gpu and ivf is not None:
        from index.gpu import gpu_clustering_index

        ivf.clustering_index = gpu_clustering_index(ivf.d)
    index.train(sample)


@dataclass
class BuildResult:
    """An index built from blocks, its plan and timings (seconds)."""

    index: Any
    plan: IndexPlan
    n: int
    train_seconds: float
    add_seconds: float
    gpu: bool


def build_from_blocks(
    blocks: BlockSource,
    *,
    factory: str | None = None,
    n: int | None = None,
    dim: int | None = None,
    memory_bytes: int | None = None,
    gpu: bool | None = None,
    seed: int = 0,
) -> BuildResult:
    """Build an index from a re-iterable stream of ``(ids, vectors)`` blocks.

    Pass one (skipped when ``n`` and ``dim`` are given and the structure needs no training)
    counts rows and draws the training sample; pass two adds the blocks one by one. Vectors
    must be unit length (the index uses inner product = cosine similarity).

    FAISS HNSW builds a worse graph when filled by several ``add`` calls (measured by
    ``bench/search_bench.py``: HNSW32 recall@10 0.998 with one call, 0.988 with 2, 0.926 with
    10), so HNSW structures get one ``add`` of all rows, which holds the vectors twice for a
    moment; the default rules never pick HNSW for that reason.

    Args:
        blocks: function returning a fresh iterator of blocks (e.g. ``parquet_blocks(db)``).
        factory: factory string overriding :func:`choose_factory`.
        n: number of rows when known (saves a pass for untrained structures).
        dim: vector dimension when known.
        memory_bytes: memory budget for :func:`choose_factory`.
        gpu: train on the GPU; default when one is present.
        seed: seed of the training sample.

    Raises:
        IndexBuildError: no vectors, or rows of another dimension than the index.
    """
    import time

    use_gpu = gpu_available() if gpu is None else (gpu and gpu_available())
    sample = np.empty((0, 0), dtype=np.float32)
    needs_pass = n is None or dim is None or factory is None or _needs_training(factory, dim)
    if needs_pass:
        probe_size = MAX_TRAIN if factory is None else train_size_for(factory, n or MAX_TRAIN)
        n, dim, sample = sample_blocks(blocks(), probe_size, seed)
    assert n is not None and dim is not None
    if n == 0:
        raise IndexBuildError("no vectors to index: the database holds no embeddings")
    plan = plan_index(n, dim, memory_bytes, override=factory)
    index = new_index(plan.factory, dim)
    t0 = time.perf_counter()
    if not index.is_trained:
        size = train_size_for(plan.factory, n)
        _train(index, sample[:size] if len(sample) > size else sample, use_gpu)
    del sample
    t1 = time.perf_counter()
    if "HNSW" in plan.factory and "IVF" not in plan.factory:
        ids, x = _concat(blocks(), n, dim)
        index.add_with_ids(x, ids)
    else:
        for ids, x in blocks():
            x = np.ascontiguousarray(x, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != dim:
                raise IndexBuildError(f"a block has shape {x.shape}; the index holds dim {dim}")
            index.add_with_ids(x, np.ascontiguousarray(ids, dtype=np.int64))
    t2 = time.perf_counter()
    if index.ntotal != n:
        raise IndexMismatchError(f"the stream gave {index.ntotal} rows on pass two but {n} on pass one")
    return BuildResult(index, plan, n, t1 - t0, t2 - t1, use_gpu)


def _needs_training(factory: str, dim: int) -> bool:
    import faiss

    return not faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT).is_trained


def _concat(blocks: Iterable[Block], n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.empty(n, dtype=np.int64)
    x = np.empty((n, dim), dtype=np.float32)
    pos = 0
    for i, v in blocks:
        ids[pos : pos + len(i)] = i
        x[pos : pos + len(v)] = v
        pos += len(v)
    return ids, x


def parquet_blocks(db: str | Path, batch_rows: int = 65_536) -> BlockSource:
    """A block source over a database's embeddings: ``(h3 ids, vectors)`` per record batch.

    Only the ``h3`` and ``embedding`` columns are read, ``batch_rows`` rows at a time. Every
    row is yielded: a database holding several dates of one cell needs a stream of the latest
    rows instead (``index.vectors.iter_latest``), since ids must be unique.
    """
    ds, _meta = contract.open_dataset(db)

    def gen() -> Iterator[Block]:
        for batch in ds.to_batches(columns=[contract.H3, contract.EMBEDDING], batch_size=batch_rows):
            if batch.num_rows == 0:
                continue
            table = pa.Table.from_batches([batch])
            ids = table.column(contract.H3).to_numpy().astype(np.int64)
            yield ids, contract.embeddings_matrix(table)

    return gen


def _inner(index: Any) -> Any:
    import faiss

    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index

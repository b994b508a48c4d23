"""Choose a FAISS index structure from data size and memory, and build it from a vector stream.

The structure is a FAISS factory string (``"Flat"``, ``"IVF4096,Flat"``,
``"IVF16384_HNSW32,SQ8"``) that the user may override. The rules:

* fewer than :data:`EXACT_MAX` vectors: ``Flat`` (exact search is fast enough and needs no
  training);
* up to :data:`GRAPH_MAX` vectors whose graph and raw vectors fit the memory budget:
  ``HNSW32`` (a graph: in ``bench/search_bench.py`` at 1M x 128 it answered ~7x more queries/s
  than ``IVF4096,Flat`` at recall@10 0.95; it is filled by one ``add`` and cannot remove
  rows, so updates rebuild it);
* the raw vectors fit in the memory budget: ``IVF<nlist>,Flat`` (exact distances inside the
  probed lists, so no refinement is needed; it is filled block by block and supports
  removal, which incremental index updates use);
* otherwise compressed codes (:func:`compressed_ladder`): 16-bit float codes, else 8-bit
  scalar codes, else a 4-bit fast-scan product quantiser (``IVF<nlist>,PQ<d/2>x4fsr``),
  whichever is the most accurate that fits.

``nlist`` is the power of two nearest ``4 * sqrt(n)``; from 16,384 lists the coarse quantiser
is an HNSW graph so that adding millions of vectors does not scan every centroid.

Vectors arrive as blocks from a re-iterable source (:func:`parquet_blocks` reads a database's
Parquet files batch by batch), so the whole table is never in RAM twice: pass one counts rows
and keeps a uniform training sample, pass two adds blocks. Ids are the rows' H3 cells (int64).
With a CUDA build of FAISS and a GPU, k-means training runs on the GPU. The measured trade-offs
(recall, queries/s, build time, bytes per vector against hnswlib, usearch, DuckDB and numpy)
are in ``bench/search_bench.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedder import contract
from embedder.errors import EarthvecError, IndexMismatchError

EXACT_MAX = 100_000
"""Below this many vectors the index is exact (``Flat``)."""

GRAPH_M = 32
"""Links per node of the HNSW graph."""

GRAPH_MAX = 5_000_000
"""Above this many vectors the graph's build time (one ``add``, ~2 cores) is too long: IVF."""

HNSW_EF_CONSTRUCTION = 100
"""Candidate list size while building the graph."""

HNSW_EF_SEARCH = 64
"""Default candidate list size while searching (``calibrate`` tunes it)."""

MEMORY_FRACTION = 0.5
"""Share of the available RAM an index may use when no budget is given."""

TRAIN_PER_LIST = 40
"""Training vectors per IVF list (FAISS warns below 39; more costs k-means time, 2 cores)."""

MAX_TRAIN = 262_144
"""Upper bound on the k-means training sample."""

HNSW_QUANTIZER_MIN_NLIST = 16_384
"""From this many IVF lists the coarse quantiser is an HNSW graph (fast assignment of adds)."""

FEW_ITER_MIN_NLIST = 8_192
"""From this many lists k-means runs :data:`FEW_ITER` iterations (FAISS default 25)."""

FEW_ITER = 10

TRAIN_SAMPLE = MAX_TRAIN
"""Alias of :data:`MAX_TRAIN` (training sample size used by ``index.store``)."""

REFINE_K_FACTOR = 16
"""A ``Refine(...)`` index re-ranks ``k * REFINE_K_FACTOR`` compressed-code candidates."""

Block = tuple[np.ndarray, np.ndarray]
"""``(ids int64 (n,), vectors float32 (n, d))``."""

BlockSource = Callable[[], Iterable[Block]]
"""A function returning a fresh iterator over the blocks (called once per pass)."""


class IndexBuildError(EarthvecError, ValueError):
    """The index cannot be built: bad factory string, wrong dimension, empty input."""


@dataclass(frozen=True)
class IndexPlan:
    """A chosen index structure and why.

    Attributes:
        factory: FAISS factory string (without the id wrapper).
        n: number of vectors planned for.
        dim: vector dimension.
        bytes_per_vector: estimated index memory per vector (codes, links, ids).
        reason: one sentence for logs and the sidecar.
        search_params: suggested starting parameters (``nprobe``/``efSearch``); tune them
            with :func:`calibrate` on the real data.
    """

    factory: str
    n: int
    dim: int
    bytes_per_vector: float
    reason: str
    search_params: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> float:
        """Estimated memory of the whole index."""
        return self.bytes_per_vector * self.n


# -- choosing ---------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of RAM available now (``MemAvailable`` on Linux, else total physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def nlist_for(n: int) -> int:
    """IVF list count: the power of two nearest ``4 * sqrt(n)``, within [64, 65536]."""
    target = 4.0 * math.sqrt(max(n, 1))
    return int(min(65536, max(64, 2 ** round(math.log2(target)))))


def nprobe_for(nlist: int) -> int:
    """A starting ``nprobe`` (about nlist / 256, at least 8); :func:`calibrate` refines it."""
    return max(8, nlist // 256)


def bytes_per_vector(factory: str, dim: int) -> float:
    """Estimate index memory per vector for the factory strings this module produces.

    Counts codes, graph links and 8-byte ids (IVF lists, or the id map of other indexes);
    ignores fixed costs (centroids, tables). Unknown components raise.

    Raises:
        IndexBuildError: for a component the estimate does not know.
    """
    total = 8.0  # the id of each vector (IVF list entry or IDMap)
    ivf = False
    for part in _split_factory(factory):
        if m := re.fullmatch(r"IVF\d+(_HNSW\d+)?", part):
            ivf = True
        elif part == "Flat":
            total += 4 * dim
        elif m := re.fullmatch(r"HNSW(\d+)(,?Flat)?", part):
            total += 4 * dim + 2 * int(m.group(1)) * 4 * 1.1  # level 0: 2M links; upper ~10%
        elif m := re.fullmatch(r"PQ(\d+)(x(\d+))?(fs|fsr)?", part):
            bits = int(m.group(3) or 8)
            total += int(m.group(1)) * bits / 8
        elif m := re.fullmatch(r"SQ(8|4|6|fp16|bf16)", part):
            total += {"8": dim, "4": dim / 2, "6": dim * 0.75}.get(m.group(1), 2 * dim)
        elif m := re.fullmatch(r"(OPQ|PCAR?)\d+(_\d+)?", part):
            continue
        elif part == "RFlat":
            total += 4 * dim
        elif m := re.fullmatch(r"Refine\((.+)\)", part):
            total += bytes_per_vector(m.group(1), dim) - 8.0
        else:
            raise IndexBuildError(
                f"cannot estimate the memory of factory component {part!r} in {factory!r}; "
                "use Flat, HNSW<M>, IVF<n>,Flat, IVF<n>,PQ<m>[x<bits>][fs], SQ8, RFlat or Refine(...)"
            )
    if ivf and "Flat" not in factory and "PQ" not in factory and "SQ" not in factory:
        raise IndexBuildError(f"factory {factory!r} names an IVF index without codes")
    return total


def _split_factory(factory: str) -> list[str]:
    """Top-level comma-separated parts (commas inside ``Refine(...)`` stay together)."""
    parts, depth, cur = [], 0, ""
    for ch in factory:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    parts.append(cur.strip())
    return [p for p in parts if p]


def choose_factory(n: int, dim: int, memory_bytes: int | None = None) -> str:
    """The factory string for ``n`` vectors of ``dim`` within ``memory_bytes`` (see module doc).

    Raises:
        IndexBuildError: see :func:`plan_index`.
    """
    return plan_index(n, dim, memory_bytes).factory


def plan_index(
    n: int,
    dim: int,
    memory_bytes: int | None = None,
    *,
    override: str | None = None,
) -> IndexPlan:
    """Pick the index structure for ``n`` vectors of ``dim`` within ``memory_bytes``.

    Args:
        n: number of vectors.
        dim: vector dimension.
        memory_bytes: budget for the index; default half of the RAM available now.
        override: a factory string given by the user; it wins over the rules but is checked.

    Raises:
        IndexBuildError: for a bad dimension, a bad override, or when even the smallest
            compressed codes do not fit the budget.
    """
    if dim <= 0 or n < 0:
        raise IndexBuildError(f"cannot plan an index for n={n} vectors of dim={dim}")
    budget = int(MEMORY_FRACTION * available_memory()) if memory_bytes is None else memory_bytes
    nlist = nlist_for(n)
    params = {"nprobe": nprobe_for(nlist)}
    if override:
        override = _strip_ids(override.replace(" ", ""))
        check_factory(override, dim)
        sp = {"nprobe": nprobe_for(_nlist_of(override))} if "IVF" in override else {}
        if "HNSW" in override and "IVF" not in override:
            sp = {"efSearch": HNSW_EF_SEARCH}
        return IndexPlan(override, n, dim, bytes_per_vector(override, dim), "given by the user", sp)
    if n < EXACT_MAX:
        f = "Flat"
        return IndexPlan(f, n, dim, bytes_per_vector(f, dim), f"exact: {n} < {EXACT_MAX} vectors")
    graph = f"HNSW{GRAPH_M}"
    if n <= GRAPH_MAX and n * (bytes_per_vector(graph, dim) + 4 * dim) <= budget:
        return IndexPlan(
            graph,
            n,
            dim,
            bytes_per_vector(graph, dim),
            f"graph and raw vectors fit in {budget / 2**30:.1f} GiB and n <= {GRAPH_MAX:,}: "
            "HNSW graph (fastest at recall 0.95 in bench/search_bench.py)",
            {"efSearch": HNSW_EF_SEARCH},
        )
    ivf = f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTIZER_MIN_NLIST else f"IVF{nlist}"
    f = f"{ivf},Flat"
    if n * bytes_per_vector(f, dim) <= budget:
        return IndexPlan(
            f,
            n,
            dim,
            bytes_per_vector(f, dim),
            f"raw vectors fit in {budget / 2**30:.1f} GiB: inverted lists with exact distances",
            params,
        )
    got = compressed_factory(n, dim, budget)
    if got is None:
        raise IndexBuildError(
            f"{n} vectors of dim {dim} do not fit in {budget / 2**30:.2f} GiB even as 4-bit PQ "
            "codes; give more memory (--memory) or index a smaller region"
        )
    f, why = got
    return IndexPlan(
        f,
        n,
        dim,
        bytes_per_vector(f, dim),
        f"raw vectors ({n * 4 * dim / 2**30:.1f} GiB) exceed the {budget / 2**30:.1f} GiB budget: {why}",
        params,
    )


def compressed_ladder(n: int, dim: int) -> list[tuple[str, str]]:
    """Compressed structures for ``n`` vectors of ``dim``, most accurate (and largest) first.

    Scalar codes keep every dimension: 16-bit floats (2 bytes a dimension, recall@10 0.99 in
    ``bench/search_bench.py``), then 8-bit codes (1 byte). Only when those do not fit does a
    4-bit fast-scan product quantiser on residuals take over (a quarter byte a dimension,
    much lower recall on dense data). A re-ranking stage on top of PQ (``Refine(SQ8)``) was
    measured too: it costs more memory than 8-bit codes alone and recalls less.
    """
    nlist = nlist_for(n)
    ivf = f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTIZER_MIN_NLIST else f"IVF{nlist}"
    m = _pq_subquantizers(dim)
    return [
        (f"{ivf},SQfp16", "16-bit float codes (half the raw size)"),
        (f"{ivf},SQ8", "8-bit scalar codes (a quarter of the raw size)"),
        (f"{ivf},PQ{m}x4fsr", "4-bit fast-scan PQ codes of residuals (8-bit codes do not fit)"),
    ]


def compressed_factory(n: int, dim: int, memory_bytes: int) -> tuple[str, str] | None:
    """The first structure of :func:`compressed_ladder` that fits ``memory_bytes``, and why.

    ``None`` when not even the 4-bit codes fit.
    """
    for f, why in compressed_ladder(n, dim):
        if n * bytes_per_vector(f, dim) <= memory_bytes:
            return f, why
    return None


def _pq_subquantizers(dim: int) -> int:
    """Sub-quantiser count: d/2 (2-d sub-vectors), a multiple of 4 dividing ``dim`` if any."""
    for m in (dim // 2, dim // 4, dim):
        if m > 0 and dim % m == 0 and m % 4 == 0:
            return m
    return dim


def _nlist_of(factory: str) -> int:
    m = re.search(r"IVF(\d+)", factory)
    return int(m.group(1)) if m else 0


def check_factory(factory: str, dim: int) -> None:
    """Check that FAISS accepts ``factory`` for ``dim``.

    Raises:
        IndexBuildError: naming the string and FAISS's complaint.
    """
    import faiss

    try:
        faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "rejected"
        raise IndexBuildError(
            f"FAISS rejects factory string {factory!r} for dim {dim}: {first}; "
            "see https://github.com/facebookresearch/faiss/wiki/The-index-factory"
        ) from exc


# -- building ---------------------------------------------------------------------------------


def gpu_available() -> bool:
    """True when the FAISS build has CUDA support and sees a GPU."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return bool(get and hasattr(faiss, "StandardGpuResources") and get() > 0)


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 for faiss-cpu)."""
    import faiss

    return int(faiss.get_num_gpus()) if gpu_available() else 0


def to_gpu(index: Any) -> Any:
    """A GPU copy of ``index`` on all GPUs (for exact search); the CPU index stays the reference."""
    import faiss

    return faiss.index_cpu_to_all_gpus(index)


def _strip_ids(factory: str) -> str:
    parts = _split_factory(factory)
    return ",".join(p for p in parts if p not in ("IDMap", "IDMap2"))


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
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
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


# -- tuning -----------------------------------------------------------------------------------


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the true ``k`` nearest ids found among the returned ``k``."""
    f, t = found[:, :k], truth[:, :k]
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(f, t, strict=True))
    return hits / float(t.size)


def calibrate(
    index: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    k: int = 10,
    target: float = 0.95,
    values: Iterable[int] | None = None,
) -> tuple[str, int, float]:
    """Set the smallest ``nprobe`` (IVF) or ``efSearch`` (HNSW) whose recall@k reaches ``target``.

    Args:
        index: a trained, filled index.
        queries: (q, d) query vectors.
        truth: (q, >=k) exact neighbour ids (e.g. from an ``IndexFlatIP`` oracle).
        k: neighbours per query.
        target: recall to reach.
        values: candidate parameter values, increasing.

    Returns:
        ``(parameter, value, recall)``; exact structures return ``("", 0, recall)``. When no
        value reaches ``target`` the largest is kept.
    """
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        name = "nprobe"
        cands = list(values or (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256))
        cands = [v for v in cands if v <= ivf.nlist] or [ivf.nlist]
    elif "HNSW" in type(_inner(index)).__name__:
        name = "efSearch"
        cands = list(values or (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512))
    else:
        _, ids = index.search(queries, k)
        return "", 0, recall_at_k(ids, truth, k)
    ps = faiss.ParameterSpace()
    rec = 0.0
    for v in cands:
        ps.set_index_parameter(index, name, v)
        _, ids = index.search(queries, k)
        rec = recall_at_k(ids, truth, k)
        if rec >= target:
            return name, v, rec
    return name, cands[-1], rec


def _inner(index: Any) -> Any:
    import faiss

    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index

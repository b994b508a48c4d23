"""Choose a FAISS index structure (a factory string) from data size and memory.

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
  whichever is the most accurate that fits;
* with ``allow_ondisk=True``, when neither the raw vectors nor 8-bit codes fit: the
  out-of-core index of :mod:`index.ondisk` (:func:`plan_ondisk`: compressed codes in
  memory-mapped inverted lists, exact re-ranking from a memory-mapped vector file), whose
  RAM need is the coarse quantiser alone.

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

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from index.memory import available_memory
from index.plan_rules import (
    EXACT_MAX,
    GRAPH_M,
    GRAPH_MAX,
    HNSW_EF_SEARCH,
    HNSW_QUANTIZER_MIN_NLIST,
    MEMORY_FRACTION,
    IndexBuildError,
    nlist_for,
    nprobe_for,
)

if TYPE_CHECKING:
    from index.ondisk_plan import OnDiskPlan


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
        ondisk: set when the structure is the out-of-core index (build it with
            :func:`index.ondisk.build_ondisk`, not :func:`index.faiss_build.build_from_blocks`).
    """

    factory: str
    n: int
    dim: int
    bytes_per_vector: float
    reason: str
    search_params: dict[str, int] = field(default_factory=dict)
    ondisk: OnDiskPlan | None = None

    @property
    def total_bytes(self) -> float:
        """Estimated memory of the whole index."""
        return self.bytes_per_vector * self.n


# -- choosing ---------------------------------------------------------------------------------


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
        elif re.fullmatch(r"RaBitQ(fs)?\d*(_\d+)?", part):
            total += _faiss_code_size(part, dim)
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
                "use Flat, HNSW<M>, IVF<n>,Flat, IVF<n>,PQ<m>[x<bits>][fs], RaBitQ[fs], SQ8, RFlat "
                "or Refine(...)"
            )
    if ivf and not any(c in factory for c in ("Flat", "PQ", "SQ", "RaBitQ")):
        raise IndexBuildError(f"factory {factory!r} names an IVF index without codes")
    return total


def _faiss_code_size(part: str, dim: int) -> float:
    """Bytes of one code of the codes component ``part`` as FAISS lays it out."""
    import faiss

    index = faiss.index_factory(dim, f"IVF1,{part}", faiss.METRIC_INNER_PRODUCT)
    return float(faiss.extract_index_ivf(index).code_size)


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
    allow_ondisk: bool = False,
) -> IndexPlan:
    """Pick the index structure for ``n`` vectors of ``dim`` within ``memory_bytes``.

    Args:
        n: number of vectors.
        dim: vector dimension.
        memory_bytes: budget for the index; default half of the RAM available now.
        override: a factory string given by the user; it wins over the rules but is checked.
        allow_ondisk: plan the out-of-core index (``IndexPlan.ondisk``) when neither the raw
            vectors nor 8-bit codes fit the budget, instead of 4-bit codes in RAM or an error.

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
    if allow_ondisk and n * bytes_per_vector(f"{ivf},SQ8", dim) > budget:
        from index.ondisk_plan import plan_ondisk

        od = plan_ondisk(n, dim)
        return IndexPlan(
            od.factory,
            n,
            dim,
            od.ram_bytes_per_vector,
            f"raw vectors ({n * 4 * dim / 2**30:.1f} GiB) and 8-bit codes exceed the "
            f"{budget / 2**30:.1f} GiB budget: out-of-core ({od.reason})",
            {"nprobe": od.nprobe, "k_factor": od.k_factor},
            ondisk=od,
        )
    got = compressed_factory(n, dim, budget)
    if got is None:
        raise IndexBuildError(
            f"{n} vectors of dim {dim} do not fit in {budget / 2**30:.2f} GiB even as 4-bit PQ "
            "codes; give more memory (--memory), build the out-of-core index "
            "(earthvec index DB --out-of-core) or index a smaller region"
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


def _strip_ids(factory: str) -> str:
    parts = _split_factory(factory)
    return ",".join(p for p in parts if p not in ("IDMap", "IDMap2"))

"""The structure of the out-of-core index (:mod:`index.ondisk`): codes, metric, lists, re-ranking.

Only array-layout codes can live in FAISS's memory-mapped ``OnDiskInvertedLists`` (the
fast-scan variants pack codes in blocks of 32 that ``merge_ondisk`` rejects), so the choice
is among:

* ``rabitq``: ``RaBitQ`` 1-bit codes (``d / 8 + 8`` bytes), inner product: the estimator is
  unbiased, so it ranks candidates well for exact re-ranking;
* ``rabitq2``, ``rabitq4``: RaBitQ with 2 or 4 bits a dimension (36 and 52 bytes at 64-d):
  tighter estimates, fewer candidates to re-rank. ``rabitq4`` is the default: at 10M x 64-d
  (``bench/scale_bench.py``) recall@10 0.95 took 4 re-ranked rows per result against 16 for
  ``rabitq2`` and 32 for ``rabitq``, and each re-ranked row is a random read of the vector
  file, which out of core may come from disk;
* ``pq4``: ``PQ<d/2>x4`` on residuals, scored by **L2** (``d / 4`` bytes);
* ``pq8``: ``PQ<d/4>`` 8-bit codes on residuals, L2 (``d / 4`` bytes, slower to scan);
* ``sq8``: 8-bit scalar codes, inner product (``d`` bytes).

Why PQ codes are scored by L2: on unit vectors L2 and inner product rank identically, but a
PQ reconstruction ``x^ = x - e`` estimates ``<q, x>`` with error ``<q, e>`` under inner
product and ``<q - x, e> + |e|^2 / 2`` under L2; for near neighbours ``q - x`` is short, so the
L2 estimate is ~3x more accurate (``bench/pq_diagnosis.py`` measures both on the same codes;
this is why ``IVF4096,PQ64x4fs,RFlat`` with inner product never passed recall 0.71).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from index.plan_rules import HNSW_QUANTIZER_MIN_NLIST, IndexBuildError, nlist_for

CODES = ("rabitq", "rabitq2", "rabitq4", "pq4", "pq8", "sq8")
DEFAULT_CODES = "rabitq4"
TRAIN_PER_LIST = 30
"""Training vectors per list (FAISS warns below 39 for one-level k-means; two-level is fine)."""
MAX_TRAIN = 1_048_576
TWO_LEVEL_MIN_NLIST = 8192
"""From this many lists the quantiser is trained by two-level k-means (``sqrt(nlist)`` groups)."""
ONDISK_K_FACTOR = 8
"""Default candidates re-ranked per result (``tune`` refines it on held-out queries)."""


@dataclass(frozen=True)
class OnDiskPlan:
    """The out-of-core structure and why.

    Attributes:
        factory: FAISS factory string of the IVF with its codes.
        n: vectors planned for.
        dim: dimension.
        metric: ``"ip"`` or ``"l2"`` (the codes' scoring; results are exact inner products).
        codes: one of :data:`CODES`.
        nlist: inverted lists.
        nprobe: starting lists per query.
        k_factor: starting candidates re-ranked per result.
        train_size: training sample size.
        two_level: train the quantiser by two-level k-means.
        kmeans_iterations: k-means iterations.
        vector_dtype: dtype of the stored vectors for re-ranking.
        code_bytes: bytes of one code (without the 8-byte handle).
        reason: one sentence.
    """

    factory: str
    n: int
    dim: int
    metric: str
    codes: str
    nlist: int
    nprobe: int
    k_factor: int
    train_size: int
    two_level: bool
    kmeans_iterations: int
    vector_dtype: str
    code_bytes: float
    reason: str

    @property
    def ram_bytes_per_vector(self) -> float:
        """RAM the index needs per vector once open: nothing but the quantiser (amortised)."""
        return 4.0 * self.dim * self.nlist / max(1, self.n)

    @property
    def disk_bytes_per_vector(self) -> float:
        """Disk per vector: code, handle, stored vector and caller id."""
        per = {"float16": 2, "float32": 4, "none": 0}[self.vector_dtype]
        return self.code_bytes + 8 + per * self.dim + 8

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return asdict(self)


def _part(codes: str, dim: int) -> str:
    """The codes' component of the factory string."""
    return {
        "rabitq": "RaBitQ",
        "rabitq2": "RaBitQ2",
        "rabitq4": "RaBitQ4",
        "pq4": f"PQ{dim // 2}x4",
        "pq8": f"PQ{dim // 4}",
        "sq8": "SQ8",
    }[codes]


def code_bytes(codes: str, dim: int) -> float:
    """Bytes of one code of kind ``codes`` for ``dim`` (FAISS's own ``code_size``)."""
    import faiss

    index = faiss.index_factory(dim, f"IVF1,{_part(codes, dim)}", faiss.METRIC_INNER_PRODUCT)
    return float(faiss.extract_index_ivf(index).code_size)


def plan_ondisk(
    n: int,
    dim: int,
    *,
    codes: str = DEFAULT_CODES,
    nlist: int | None = None,
    vector_dtype: str = "float32",
    two_level: bool | None = None,
) -> OnDiskPlan:
    """Plan the out-of-core index for ``n`` vectors of ``dim`` (see module doc).

    Args:
        n: vectors.
        dim: dimension.
        codes: one of :data:`CODES`.
        nlist: inverted lists (default :func:`index.plan_rules.nlist_for`).
        vector_dtype: ``float32`` (exact re-ranking) or ``float16`` (half the file; near-ties
            among neighbours may swap), or ``none`` (no copy: re-rank from the database's
            Parquet, ``open_ondisk(vectors=ParquetVectors(...))``).
        two_level: two-level k-means (default from :data:`TWO_LEVEL_MIN_NLIST` lists).

    Raises:
        IndexBuildError: unknown ``codes``, or a dimension the codes cannot split.
    """
    if codes not in CODES:
        raise IndexBuildError(f"unknown out-of-core codes {codes!r}; use one of {', '.join(CODES)}")
    if dim <= 0 or n <= 0:
        raise IndexBuildError(f"cannot plan an out-of-core index for n={n} vectors of dim={dim}")
    if codes in ("pq4", "pq8") and dim % (2 if codes == "pq4" else 4):
        raise IndexBuildError(
            f"{codes} needs a dimension divisible by {2 if codes == 'pq4' else 4}, not {dim}"
        )
    nl = nlist or nlist_for(n)
    ivf = f"IVF{nl}_HNSW32" if nl >= HNSW_QUANTIZER_MIN_NLIST else f"IVF{nl}"
    part = _part(codes, dim)
    metric = "l2" if codes.startswith("pq") else "ip"
    two = nl >= TWO_LEVEL_MIN_NLIST if two_level is None else two_level
    train = int(min(n, MAX_TRAIN, max(nl * TRAIN_PER_LIST, 65_536)))
    return OnDiskPlan(
        factory=f"{ivf},{part}",
        n=n,
        dim=dim,
        metric=metric,
        codes=codes,
        nlist=nl,
        nprobe=max(8, int(math.ceil(nl / 256))),
        k_factor=ONDISK_K_FACTOR,
        train_size=train,
        two_level=two,
        kmeans_iterations=10 if two else 20,
        vector_dtype=vector_dtype,
        code_bytes=code_bytes(codes, dim),
        reason=f"{part} codes ({code_bytes(codes, dim):g} B) in {nl} memory-mapped lists, "
        f"exact re-ranking from {vector_dtype} vectors on disk",
    )

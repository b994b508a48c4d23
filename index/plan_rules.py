"""The sizing rules every index plan shares: thresholds, list counts, the build error.

:mod:`index.plan` (in-memory structures) and :mod:`index.ondisk_plan` (the out-of-core
index) both plan from these numbers; :mod:`index.factory` re-exports them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from embedder.errors import EarthvecError

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


def nlist_for(n: int) -> int:
    """IVF list count: the power of two nearest ``4 * sqrt(n)``, within [64, 65536]."""
    target = 4.0 * math.sqrt(max(n, 1))
    return int(min(65536, max(64, 2 ** round(math.log2(target)))))


def nprobe_for(nlist: int) -> int:
    """A starting ``nprobe`` (about nlist / 256, at least 8); :func:`calibrate` refines it."""
    return max(8, nlist // 256)

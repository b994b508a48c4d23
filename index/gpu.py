"""GPU FAISS paths: k-means, exact search, IVF and CAGRA (cuVS) graphs, used when a GPU exists.

Every function needs a CUDA build of FAISS (``faiss-gpu-cu12``, the ``gpu`` extra) and a
GPU; :func:`gpu_count` is 0 otherwise and callers take the CPU path. CAGRA needs FAISS
compiled with cuVS (:func:`cagra_available`). Built indexes come back to the CPU for storage
(:func:`to_cpu`): a CAGRA graph becomes an ``IndexHNSWCagra`` that CPU FAISS searches, an
IVF becomes the same CPU IVF, so files written after a GPU build open anywhere.
``bench/gpu_check.py`` compares each path with its CPU twin on a GPU machine.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from embedder.errors import EarthvecError

CAGRA_GRAPH_DEGREE = 32
CAGRA_INTERMEDIATE_DEGREE = 64
CAGRA_ITOPK = 64


class GpuUnavailableError(EarthvecError, RuntimeError):
    """A GPU path was asked for on a machine (or FAISS build) without one."""


def gpu_count() -> int:
    """GPUs FAISS can use (0 for faiss-cpu or no device)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    if get is None or not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(get())


def cagra_available() -> bool:
    """Whether FAISS was compiled with cuVS (``GpuIndexCagra``) and a GPU is present."""
    import faiss

    return gpu_count() > 0 and hasattr(faiss, "GpuIndexCagra") and "CUVS" in faiss.get_compile_options()


def _require_gpu() -> None:
    if gpu_count() == 0:
        raise GpuUnavailableError(
            "no GPU visible to FAISS; install faiss-gpu-cu12 (pip install 'earthvec[gpu]') on a "
            "CUDA machine, or use the CPU path"
        )


@lru_cache(maxsize=1)
def resources() -> Any:
    """One ``StandardGpuResources`` per process (temporary memory, streams)."""
    import faiss

    _require_gpu()
    return faiss.StandardGpuResources()


def gpu_clustering_index(dim: int) -> Any:
    """An L2 flat index on every GPU, for ``IndexIVF.clustering_index`` (k-means on GPU)."""
    import faiss

    _require_gpu()
    return faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(dim))


def knn(q: np.ndarray, x: np.ndarray, k: int, metric: str = "ip") -> tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest neighbours on the GPU (``faiss.knn_gpu``), same result layout as ``faiss.knn``."""
    import faiss

    m = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    d, i = faiss.knn_gpu(
        resources(), np.ascontiguousarray(q, np.float32), np.ascontiguousarray(x, np.float32), k, metric=m
    )
    return d, i


def to_gpu(index: Any, device: int = 0) -> Any:
    """A GPU copy of a CPU index (Flat, IVF-Flat, IVF-PQ with 8-bit codes, IVF-SQ)."""
    import faiss

    opts = faiss.GpuClonerOptions()
    opts.useFloat16 = False
    return faiss.index_cpu_to_gpu(resources(), device, index, opts)


def to_cpu(index: Any) -> Any:
    """The CPU twin of a GPU index (a CAGRA graph becomes ``IndexHNSWCagra``)."""
    import faiss

    return faiss.index_gpu_to_cpu(index)


def build_ivf_gpu(factory: str, sample: np.ndarray, x: np.ndarray, ids: np.ndarray | None = None) -> Any:
    """Train and fill an inner-product IVF on the GPU; returns the CPU index.

    The structure must be one the GPU implements (``IVF<n>,Flat``, ``IVF<n>,PQ<m>``,
    ``IVF<n>,SQ8``); fast-scan and RaBitQ codes are CPU-only.
    """
    import faiss

    cpu = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    gpu = to_gpu(cpu)
    gpu.train(np.ascontiguousarray(sample, np.float32))
    x = np.ascontiguousarray(x, np.float32)
    if ids is None:
        gpu.add(x)
    else:
        gpu.add_with_ids(x, np.ascontiguousarray(ids, np.int64))
    return to_cpu(gpu)


def build_cagra(
    x: np.ndarray,
    *,
    graph_degree: int = CAGRA_GRAPH_DEGREE,
    intermediate_degree: int = CAGRA_INTERMEDIATE_DEGREE,
) -> Any:
    """Build a CAGRA graph of unit vectors (inner product) on the GPU; returns the GPU index.

    Raises:
        GpuUnavailableError: no GPU, or FAISS without cuVS.
    """
    import faiss as _faiss

    faiss: Any = _faiss  # the GPU classes are missing from faiss's type stubs
    if not cagra_available():
        raise GpuUnavailableError(
            "CAGRA needs FAISS built with cuVS and a GPU (faiss-gpu-cuvs from conda-forge/pytorch)"
        )
    cfg = faiss.GpuIndexCagraConfig()
    cfg.graph_degree = graph_degree
    cfg.intermediate_graph_degree = intermediate_degree
    index = faiss.GpuIndexCagra(resources(), x.shape[1], faiss.METRIC_INNER_PRODUCT, cfg)
    index.train(np.ascontiguousarray(x, np.float32))
    return index


def search_cagra(
    index: Any, q: np.ndarray, k: int, itopk: int = CAGRA_ITOPK
) -> tuple[np.ndarray, np.ndarray]:
    """Search a GPU CAGRA index with ``itopk_size`` (its accuracy knob, >= k)."""
    import faiss as _faiss

    faiss: Any = _faiss

    params = faiss.SearchParametersCagra()
    params.itopk_size = max(itopk, k)
    return index.search(np.ascontiguousarray(q, np.float32), k, params=params)


def cagra_to_hnsw(index: Any, ef_search: int = 64) -> Any:
    """The CPU ``IndexHNSWCagra`` of a CAGRA graph (base level only), searched by CPU FAISS."""
    cpu = to_cpu(index)
    cpu.hnsw.efSearch = ef_search
    return cpu

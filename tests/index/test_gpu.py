"""index.gpu: GPU FAISS paths against their CPU twins (run only where FAISS sees a GPU).

Real 128-d EuroSAT patch vectors (``bench.data``). Without a GPU every test is skipped and
:func:`index.gpu.gpu_count` must say 0 (checked here, so the skip itself is tested).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from index import gpu

REPO = Path(__file__).resolve().parents[2]
needs_gpu = pytest.mark.skipif(gpu.gpu_count() == 0, reason="no GPU visible to FAISS")


@pytest.fixture(scope="module")
def vecs() -> tuple[np.ndarray, np.ndarray]:
    from bench.data import load_real_vectors

    x = load_real_vectors(REPO / "data" / "eurosat_ms", chip_step=3).vectors
    return x[200:], x[:200]


def recall(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(u, v)) / a.shape[1] for u, v in zip(a, b, strict=True)]))


def test_no_gpu_means_the_cpu_path_and_a_clear_error() -> None:
    if gpu.gpu_count() > 0:
        pytest.skip("a GPU is present")
    assert not gpu.cagra_available()
    with pytest.raises(gpu.GpuUnavailableError, match="faiss-gpu-cu12"):
        gpu.resources()
    with pytest.raises(gpu.GpuUnavailableError, match="cuVS"):
        gpu.build_cagra(np.zeros((10, 8), np.float32))


@pytest.mark.gpu
@needs_gpu
def test_gpu_knn_equals_cpu(vecs) -> None:
    x, q = vecs
    dc, ic = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    dg, ig = gpu.knn(q, x, 10)
    assert recall(ig, ic) >= 0.999 and np.abs(dg - dc).max() <= 1e-4


@pytest.mark.gpu
@needs_gpu
def test_gpu_built_ivf_searches_on_the_cpu_like_a_cpu_build(vecs) -> None:
    x, q = vecs
    _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    cpu = faiss.index_factory(128, "IVF256,Flat", faiss.METRIC_INNER_PRODUCT)
    cpu.train(x)
    cpu.add(x)
    built = gpu.build_ivf_gpu("IVF256,Flat", x, x)
    for ix in (cpu, built):
        faiss.extract_index_ivf(ix).nprobe = 16
    assert recall(built.search(q, 10)[1], truth) >= recall(cpu.search(q, 10)[1], truth) - 0.02


@pytest.mark.gpu
@needs_gpu
def test_cagra_graph_searches_on_gpu_and_as_cpu_hnsw(vecs) -> None:
    if not gpu.cagra_available():
        pytest.skip("FAISS without cuVS")
    x, q = vecs
    _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    index = gpu.build_cagra(x)
    r_gpu = recall(gpu.search_cagra(index, q, 10, itopk=128)[1], truth)
    r_cpu = recall(gpu.cagra_to_hnsw(index, ef_search=128).search(q, 10)[1], truth)
    assert r_gpu >= 0.95 and r_cpu >= r_gpu - 0.03

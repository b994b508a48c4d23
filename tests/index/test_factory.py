"""index.factory: structure choice, memory estimates and streamed builds against exact oracles.

Vectors are real: 4x4-pixel patch spectra of the EuroSAT chips in ``data/eurosat_ms``
projected to 128-d (``bench.data``), and the stats-model database of ``tests/index/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from embedder import contract
from index import factory as fac

REPO = Path(__file__).resolve().parents[2]
GIB = 2**30


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    """30,000 real 128-d patch vectors (a fixed random subset), float32 unit rows."""
    from bench.data import load_real_vectors

    real = load_real_vectors(REPO / "data" / "eurosat_ms", chip_step=3)  # 123 chips, 31,488 rows
    rng = np.random.default_rng(1)
    return real.vectors[rng.permutation(len(real.vectors))[:31_000]]


def blocks_of(x: np.ndarray, ids: np.ndarray, size: int) -> fac.BlockSource:
    def gen() -> Iterator[fac.Block]:
        for s in range(0, len(x), size):
            yield ids[s : s + size], x[s : s + size]

    return gen


def exact(base: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """numpy oracle: ids of the k largest inner products."""
    sims = q @ base.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return ids[top]


# -- choosing ---------------------------------------------------------------------------------


def test_rules_follow_size_and_memory() -> None:
    assert fac.choose_factory(99_999, 128, 8 * GIB) == "Flat"
    assert fac.choose_factory(1_000_000, 128, 8 * GIB) == "HNSW32"
    assert fac.choose_factory(1_000_000, 128, 1 * GIB) == "IVF4096,Flat"  # the graph does not fit
    assert fac.choose_factory(8_000_000, 128, 16 * GIB) == "IVF8192,Flat"  # too many for a graph
    big = fac.plan_index(10_000_000, 128, 4 * GIB)
    assert big.factory == "IVF16384_HNSW32,SQfp16"
    assert big.total_bytes <= 4 * GIB < 10_000_000 * 128 * 4
    assert fac.choose_factory(10_000_000, 128, 2 * GIB) == "IVF16384_HNSW32,SQ8"
    assert fac.choose_factory(10_000_000, 128, 1 * GIB) == "IVF16384_HNSW32,PQ64x4fsr"
    with pytest.raises(fac.IndexBuildError, match="do not fit"):
        fac.plan_index(10_000_000, 128, 100 * 2**20)


def test_compressed_structure_shrinks_with_the_budget() -> None:
    roomy = fac.compressed_factory(1_000_000, 128, 1 * GIB)
    tight = fac.compressed_factory(1_000_000, 128, 50 * 2**20)
    assert roomy is not None and roomy[0] == "IVF4096,SQfp16"
    assert tight is not None and tight[0] == "IVF4096,PQ64x4fsr"
    assert fac.compressed_factory(1_000_000, 128, 10 * 2**20) is None


def test_override_wins_and_is_checked() -> None:
    plan = fac.plan_index(5_000_000, 128, 1 * GIB, override="IDMap2, HNSW32")
    assert plan.factory == "HNSW32" and plan.reason == "given by the user"
    with pytest.raises(fac.IndexBuildError, match="IVFx,Flat"):
        fac.plan_index(10, 128, override="IVFx,Flat")


def test_normalise_adds_id_map_only_where_needed() -> None:
    assert fac.normalise_factory("Flat", 128) == "IDMap2,Flat"
    assert fac.normalise_factory("IDMap2,Flat", 128) == "IDMap2,Flat"
    assert fac.normalise_factory(" IVF64 , Flat", 128) == "IVF64,Flat"
    assert fac.normalise_factory("IVF64,PQ16x4fs,Refine(SQ8)", 128).startswith("IDMap2,")
    assert fac.is_exact("IDMap2,Flat") and not fac.is_exact("IVF64,Flat")
    assert fac.stores_exact_vectors("HNSW32") and not fac.stores_exact_vectors("IVF64,Flat")


def test_memory_estimate_matches_serialised_index(patches: np.ndarray) -> None:
    x = patches[:6_000]
    ids = np.arange(len(x), dtype=np.int64)
    for f in ("IVF32,Flat", "IVF32,PQ32x4fs", "IVF32,SQ8", "Flat", "HNSW8"):
        index = fac.new_index(f, 128)
        index.train(x)
        index.add_with_ids(x[:3_000], ids[:3_000])
        size_3k = len(faiss.serialize_index(index))
        index.add_with_ids(x[3_000:], ids[3_000:])
        per_vec = (len(faiss.serialize_index(index)) - size_3k) / 3_000  # marginal bytes
        est = fac.bytes_per_vector(f, 128)
        assert abs(per_vec - est) / est < 0.25, (f, per_vec, est)


# -- building ---------------------------------------------------------------------------------


def test_sample_blocks_counts_and_samples_rows(patches: np.ndarray) -> None:
    x = patches[:10_000]
    ids = np.arange(len(x), dtype=np.int64)
    n, dim, sample = fac.sample_blocks(blocks_of(x, ids, 999)(), 2_000, seed=3)
    assert (n, dim, sample.shape) == (10_000, 128, (2_000, 128))
    # every sampled row is a real row, without duplicates
    index = faiss.IndexFlatIP(128)
    index.add(x)
    sims, pos = index.search(sample, 1)
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5)
    assert len(np.unique(pos)) == 2_000
    # uniform: the sample's rows spread over the whole stream, not just its first blocks
    assert np.median(pos) == pytest.approx(5_000, rel=0.15)


def test_flat_build_equals_numpy_oracle(patches: np.ndarray) -> None:
    x = patches[:5_000]
    ids = np.arange(10**9, 10**9 + len(x), dtype=np.int64) * 7  # non-contiguous ids
    built = fac.build_from_blocks(blocks_of(x, ids, 1_000))
    assert built.plan.factory == "Flat" and built.index.ntotal == len(x)
    q = patches[30_000:30_050]
    scores, found = built.index.search(q, 10)
    # same neighbours up to float near-ties (real patches can be almost identical) ...
    assert fac.recall_at_k(found, exact(x, ids, q, 10)) >= 0.99
    # ... and exactly the oracle's scores
    assert np.allclose(scores, -np.sort(-(q @ x.T), axis=1)[:, :10], atol=1e-5)


def test_ivf_build_streams_blocks_and_reaches_target(patches: np.ndarray) -> None:
    x, q = patches[:20_000], patches[30_000:30_200]
    ids = np.arange(len(x), dtype=np.int64) + 5
    built = fac.build_from_blocks(blocks_of(x, ids, 4_096), factory="IVF128,Flat")
    index = built.index
    assert index.ntotal == len(x) and built.train_seconds > 0
    truth = exact(x, ids, q, 10)
    name, value, rec = fac.calibrate(index, q, truth, k=10, target=0.95)
    assert name == "nprobe" and rec >= 0.95 and value < 128
    # probing every list is exhaustive: same neighbours as the oracle
    faiss.extract_index_ivf(index).nprobe = 128
    scores, found = index.search(q, 10)
    assert fac.recall_at_k(found, truth) >= 0.99
    assert np.allclose(scores, -np.sort(-(q @ x.T), axis=1)[:, :10], atol=1e-5)


def test_hnsw_build_adds_once_and_is_accurate(patches: np.ndarray) -> None:
    x, q = patches[:8_000], patches[30_000:30_200]
    ids = np.arange(len(x), dtype=np.int64)
    built = fac.build_from_blocks(blocks_of(x, ids, 1_000), factory="HNSW16", n=len(x), dim=128)
    _, found = built.index.search(q, 10)
    assert fac.recall_at_k(found, exact(x, ids, q, 10)) >= 0.9


def test_selector_keeps_nprobe_and_filters(patches: np.ndarray) -> None:
    x, q = patches[:20_000], patches[30_000:30_020]
    ids = np.arange(len(x), dtype=np.int64)
    built = fac.build_from_blocks(blocks_of(x, ids, 5_000), factory="IVF64,Flat")
    faiss.extract_index_ivf(built.index).nprobe = 64
    sel = faiss.IDSelectorRange(1_000, 3_000)
    _, found = built.index.search(q, 10, params=fac.search_params(built.index, 10, sel))
    assert ((found >= 1_000) & (found < 3_000)).all()
    assert fac.recall_at_k(found, exact(x[1_000:3_000], ids[1_000:3_000], q, 10)) >= 0.99


def test_build_from_parquet_database(db: Path) -> None:
    table = contract.read_table(db, columns=[contract.H3, contract.EMBEDDING])
    vecs = contract.embeddings_matrix(table)
    cells = table.column(contract.H3).to_numpy().astype(np.int64)
    built = fac.build_from_blocks(fac.parquet_blocks(db, batch_rows=50))
    assert built.index.ntotal == len(cells)
    _, found = built.index.search(vecs[:20], 1)
    assert np.array_equal(found[:, 0], cells[:20])


def test_remove_support_matches_faiss(patches: np.ndarray) -> None:
    x = patches[:3_000]
    for f, ok in (("Flat", True), ("IVF16,Flat", True), ("HNSW8", False), ("IVF16,PQ16x4fs", False)):
        index = fac.new_index(f, 128)
        assert fac.supports_remove(index) is ok
        if ok:
            index.train(x)
            index.add_with_ids(x, np.arange(len(x), dtype=np.int64))
            assert index.remove_ids(faiss.IDSelectorRange(0, 100)) == 100


def test_empty_stream_is_an_error() -> None:
    with pytest.raises(fac.IndexBuildError, match="no vectors"):
        fac.build_from_blocks(lambda: iter(()))


@pytest.mark.gpu
def test_gpu_training_matches_cpu_quality(patches: np.ndarray) -> None:
    if not fac.gpu_available():
        pytest.skip("no CUDA FAISS or no GPU")
    x, q = patches[:20_000], patches[30_000:30_200]
    ids = np.arange(len(x), dtype=np.int64)
    truth = exact(x, ids, q, 10)
    recalls = []
    for gpu in (False, True):
        built = fac.build_from_blocks(blocks_of(x, ids, 5_000), factory="IVF128,Flat", gpu=gpu)
        assert built.gpu is gpu
        faiss.extract_index_ivf(built.index).nprobe = 16
        recalls.append(fac.recall_at_k(built.index.search(q, 10)[1], truth))
    assert abs(recalls[0] - recalls[1]) < 0.03
    exact_gpu = fac.to_gpu(fac.build_from_blocks(blocks_of(x, ids, 5_000)).index)
    assert fac.recall_at_k(exact_gpu.search(q, 10)[1], truth) >= 0.99


def test_refined_codes_with_filters_through_the_id_map(patches: np.ndarray) -> None:
    """``...,RFlat`` under ``IDMap2``: a filter on caller ids reaches the codes' search.

    FAISS's ``IndexRefine`` takes only its own parameter class and its base sees internal
    ids, so :func:`search_params` translates the selector (before, such searches raised).
    """
    x, q = patches[1000:], patches[:200]
    ids = np.arange(len(x), dtype=np.int64) * 7 + 11
    built = fac.build_from_blocks(blocks_of(x, ids, 8000), factory="IVF256,RaBitQfs,RFlat")
    index = built.index
    truth = exact(x, ids, q, 10)
    name, _value, rec = fac.calibrate(index, q, truth, k=10, target=0.95)
    assert name == "nprobe" and rec >= 0.95
    keep = ids[(ids % 2) == 1]
    sel = faiss.IDSelectorBatch(len(keep), faiss.swig_ptr(keep))
    d, fi = index.search(q, 10, params=fac.search_params(index, 10, sel))
    assert np.all(fi[fi >= 0] % 2 == 1)
    odd = (ids % 2) == 1
    assert fac.recall_at_k(fi, exact(x[odd], ids[odd], q, 10), 10) >= 0.9
    ok = fi >= 0
    exact_ip = np.einsum("qd,qkd->qk", q, x[(np.where(ok, fi, 11) - 11) // 7])
    np.testing.assert_allclose(d[ok], exact_ip[ok], atol=1e-5)  # re-ranked scores are exact

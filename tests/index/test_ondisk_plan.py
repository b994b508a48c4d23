"""The structure chosen for out-of-core sizes (index.ondisk_plan, index.plan.plan_index)."""

from __future__ import annotations

import faiss
import pytest

from index import factory as fac
from index.ondisk_plan import plan_ondisk

GIB = 2**30


def test_out_of_core_is_planned_when_neither_raw_nor_8bit_codes_fit() -> None:
    big = fac.plan_index(100_000_000, 64, 4 * GIB, allow_ondisk=True)
    assert big.ondisk is not None
    assert big.factory == "IVF32768_HNSW32,RaBitQ4" == big.ondisk.factory
    assert big.ondisk.metric == "ip" and big.ondisk.vector_dtype == "float32"
    assert big.bytes_per_vector < 1  # only the quantiser stays in RAM
    assert big.ondisk.disk_bytes_per_vector == 52 + 8 + 256 + 8
    assert "out-of-core" in big.reason
    # 8-bit codes fit: stay in RAM; without allow_ondisk nothing changes
    assert fac.plan_index(10_000_000, 64, 2 * GIB, allow_ondisk=True).ondisk is None
    assert fac.plan_index(100_000_000, 64, 4 * GIB).factory == "IVF32768_HNSW32,PQ32x4fsr"
    with pytest.raises(fac.IndexBuildError, match="earthvec index DB --out-of-core"):
        fac.plan_index(100_000_000, 64, 100 * 2**20)


@pytest.mark.parametrize(
    ("codes", "factory", "metric", "code_bytes"),
    [
        ("rabitq", "IVF32768_HNSW32,RaBitQ", "ip", 16),
        ("rabitq4", "IVF32768_HNSW32,RaBitQ4", "ip", 52),
        ("pq4", "IVF32768_HNSW32,PQ32x4", "l2", 16),
        ("pq8", "IVF32768_HNSW32,PQ16", "l2", 16),
        ("sq8", "IVF32768_HNSW32,SQ8", "ip", 64),
    ],
)
def test_codes_map_to_factory_metric_and_size(codes: str, factory: str, metric: str, code_bytes: int) -> None:
    p = plan_ondisk(100_000_000, 64, codes=codes)
    assert (p.factory, p.metric, p.code_bytes) == (factory, metric, code_bytes)
    assert p.two_level and p.nlist == 32768 and p.train_size == 32768 * 30
    index = faiss.index_factory(
        64, p.factory, faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    )
    assert faiss.extract_index_ivf(index).code_size == code_bytes  # FAISS agrees on the code size
    small = plan_ondisk(1_000_000, 64, codes=codes)
    assert small.nlist == 4096 and not small.two_level and "_HNSW" not in small.factory


def test_bad_plans_say_what_to_do() -> None:
    with pytest.raises(fac.IndexBuildError, match="use one of rabitq"):
        plan_ondisk(10, 64, codes="lvq")
    with pytest.raises(fac.IndexBuildError, match="divisible by 2"):
        plan_ondisk(10, 63, codes="pq4")
    with pytest.raises(fac.IndexBuildError, match="n=0"):
        plan_ondisk(0, 64)

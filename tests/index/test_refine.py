"""index.refine: exact re-ranking from memory-mapped files and Parquet, against numpy.

Vectors are real 64-d EuroSAT patch spectra (``bench.data``), every ninth chip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from index.refine import MmapVectors, ParquetVectors, RefineError, handles, rerank, split_handles

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vecs() -> np.ndarray:
    from bench.data import load_real_vectors

    return load_real_vectors(REPO / "data" / "eurosat_ms", chip_step=9, dim=64).vectors  # 41 chips


def shard_files(
    x: np.ndarray, folder: Path, sizes: tuple[int, ...]
) -> tuple[list[Path], list[Path], list[Path]]:
    """The same rows as raw float32 files, .npy files and Parquet files (row groups of 1000)."""
    raw, npy, par = [], [], []
    start = 0
    for i, n in enumerate(sizes):
        part = x[start : start + n]
        start += n
        raw.append(folder / f"v{i}.f32")
        part.tofile(raw[-1])
        npy.append(folder / f"v{i}.npy")
        np.save(npy[-1], part)
        par.append(folder / f"v{i}.parquet")
        col = pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), 64)
        pq.write_table(
            pa.table({"h3": np.arange(n, dtype=np.uint64), "embedding": col}), par[-1], row_group_size=1000
        )
    return raw, npy, par


def test_handles_round_trip() -> None:
    h = handles(5, np.array([0, 7, 2**40 - 1]))
    s, r = split_handles(h)
    assert list(s) == [5, 5, 5] and list(r) == [0, 7, 2**40 - 1]


def test_every_source_returns_the_same_rows(vecs: np.ndarray, tmp_path: Path) -> None:
    sizes = (4000, len(vecs) - 4000)
    raw, npy, par = shard_files(vecs, tmp_path, sizes)
    rng = np.random.default_rng(0)
    shard = rng.integers(0, 2, 500)
    row = np.array([rng.integers(0, sizes[s]) for s in shard])
    want = vecs[np.where(shard == 0, row, row + sizes[0])]
    h = handles(0, row) | (shard.astype(np.int64) << 40)
    for src in (MmapVectors(raw, 64, "float32", rows=sizes), MmapVectors(npy, 64), ParquetVectors(par)):
        np.testing.assert_array_equal(src.take(h), want)
    f16 = tmp_path / "h.f16"
    vecs[: sizes[0]].astype(np.float16).tofile(f16)
    got16 = MmapVectors([f16], 64, "float16").take(handles(0, row[shard == 0]))
    np.testing.assert_allclose(got16, vecs[row[shard == 0]], atol=1e-3)


def test_rerank_equals_the_numpy_oracle(vecs: np.ndarray, tmp_path: Path) -> None:
    raw, _, par = shard_files(vecs, tmp_path, (len(vecs),))
    rng = np.random.default_rng(1)
    q = vecs[rng.choice(len(vecs), 50, replace=False)] + 0.05 * rng.standard_normal((50, 64)).astype(
        np.float32
    )
    sims = q @ vecs.T
    top = np.argsort(-sims, axis=1)[:, :10]
    # candidates: the true top 10 hidden among 70 random rows, with -1 padding
    cand = np.full((50, 90), -1, dtype=np.int64)
    for i in range(50):
        others = rng.choice(np.setdiff1d(np.arange(len(vecs)), top[i]), 70, replace=False)
        cand[i, :80] = rng.permutation(np.concatenate([top[i], others]))
    for src in (MmapVectors(raw, 64, "float32"), ParquetVectors(par)):
        scores, ids = rerank(q, cand, src, 10)  # shard 0: a handle is the row number
        np.testing.assert_array_equal(ids, top)
        np.testing.assert_allclose(scores, np.take_along_axis(sims, top, axis=1), rtol=1e-5, atol=1e-6)
    # fewer valid candidates than k: padded with -1 and -inf
    few = np.full((2, 5), -1, dtype=np.int64)
    few[:, :3] = cand[:2, :3]
    s, i = rerank(q[:2], few, MmapVectors(raw, 64, "float32"), 4)
    assert (i[:, 3] == -1).all() and np.isneginf(s[:, 3]).all() and (i[:, :3] >= 0).all()


def test_bad_files_say_what_is_wrong(vecs: np.ndarray, tmp_path: Path) -> None:
    raw, _, _ = shard_files(vecs[:100], tmp_path, (100,))
    with pytest.raises(RefineError, match=r"holds shape \(100, 64\), the index expects \(99, 64\)"):
        MmapVectors(raw, 64, "float32", rows=[99])
    with pytest.raises(RefineError, match="missing"):
        MmapVectors([tmp_path / "nope.f32"], 64)
    src = MmapVectors(raw, 64, "float32")
    with pytest.raises(RefineError, match="shard 3"):
        src.take(handles(3, np.array([0])))

"""index.pyramid: parent aggregates against numpy, coarse-to-fine search against exact oracles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from embedder import contract, h3grid
from embedder.errors import InputNotFoundError, QueryError
from index.pyramid import COUNT, SPREAD, build_pyramid, read_level, similar_coarse_to_fine
from index.store import open_index
from tests.index.index_helpers import oracle_top_k


def test_levels_equal_numpy_groupby(db: Path, eurosat_labels: pd.DataFrame) -> None:
    vi = open_index(db)
    assert vi.sidecar.partition_resolution == 1  # levels 5..7 stream per partition, 0 accumulates
    paths = build_pyramid(vi, [7, 5, 0])
    assert sorted(paths) == [0, 5, 7]
    cells = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vecs = np.stack(eurosat_labels["vec"].to_numpy()).astype(np.float64)
    for r in (7, 5, 0):
        t = read_level(db, r).sort_by(contract.H3)
        parents = h3grid.cell_parents(cells, r)
        uniq = np.unique(parents)
        np.testing.assert_array_equal(t.column(contract.H3).to_numpy(), uniq)
        emb = contract.embeddings_matrix(t)
        for j, p in enumerate(uniq):
            m = vecs[parents == p].mean(axis=0)
            np.testing.assert_allclose(emb[j], m / np.linalg.norm(m), atol=1e-5)
            assert t.column(COUNT)[j].as_py() == int((parents == p).sum())
            assert t.column(SPREAD)[j].as_py() == pytest.approx(1 - np.linalg.norm(m), abs=1e-5)
        assert t.column(COUNT).to_numpy().sum() == len(cells)
        assert b"geo" in pq.read_schema(paths[r]).metadata
    assert not list((db / "pyramid").glob(".*.tmp"))


def test_coarse_to_fine_is_exact_inside_chosen_parents(db: Path, eurosat_labels: pd.DataFrame) -> None:
    vi = open_index(db)
    build_pyramid(vi, [2])
    level = read_level(db, 2)
    pv, pid = contract.embeddings_matrix(level), level.column(contract.H3).to_numpy()
    cells = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    q = vecs[:25]
    hits = similar_coarse_to_fine(vi, q, 5, coarse_res=2, n_parents=3)
    for i in range(len(q)):
        best = pid[np.argsort(-(pv @ q[i]))[:3]]
        keep = np.isin(h3grid.cell_parents(cells, 2), best)
        want_ids, want_s = oracle_top_k(vecs[keep], cells[keep], q[i], 5)
        np.testing.assert_allclose(hits.scores[i][: len(want_s)], want_s, atol=1e-5)
    # all parents searched == the full exact search
    full = similar_coarse_to_fine(vi, q, 5, coarse_res=2, n_parents=len(pid))
    for i in range(len(q)):
        np.testing.assert_allclose(full.scores[i], oracle_top_k(vecs, cells, q[i], 5)[1], atol=1e-5)


def test_pyramid_errors(db: Path) -> None:
    vi = open_index(db)
    with pytest.raises(QueryError, match="coarser than the database"):
        build_pyramid(vi, [8])
    with pytest.raises(InputNotFoundError, match="build the pyramid first"):
        read_level(db, 3)

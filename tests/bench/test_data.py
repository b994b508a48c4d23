"""bench.data: the tiled benchmark set is reproducible, blockwise consistent and well placed."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pytest

from bench.data import CELL_RES, PARENT_RES, TiledSet, load_real_vectors
from embedder import h3grid
from embedder.h3grid import cells_wkb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiled() -> TiledSet:
    real = load_real_vectors(REPO / "data" / "eurosat_ms", chip_step=6)  # 62 real chips
    return TiledSet(real, n=50_000, n_queries=100, block=7_000)


def test_real_vectors_are_unit_patch_spectra(tiled: TiledSet) -> None:
    real = tiled.real
    assert real.vectors.shape == (62 * 256, 128)  # 16 x 16 patches of 4 x 4 px per 64 px chip
    assert np.allclose(np.linalg.norm(real.vectors, axis=1), 1.0, atol=1e-5)
    assert len(set(real.labels)) == 10


def test_blocks_are_consistent_and_reproducible(tiled: TiledSet) -> None:
    x = tiled.matrix()
    assert np.array_equal(tiled.vectors(6_990, 7_020), x[6_990:7_020])  # across a block edge
    again = TiledSet(tiled.real, n=50_000, n_queries=100, block=7_000)
    assert np.array_equal(again.vectors(40_000, 41_000), x[40_000:41_000])
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # the base starts with the real (non-held-out) vectors themselves
    n_seeds = len(tiled.seed_idx)
    assert np.array_equal(x[:n_seeds], tiled.real.vectors[tiled.seed_idx])


def test_queries_are_held_out(tiled: TiledSet) -> None:
    x = tiled.matrix()
    held = np.setdiff1d(np.arange(len(tiled.real.vectors)), tiled.seed_idx)
    assert len(held) == 100
    assert {v.tobytes() for v in tiled.real.vectors[held]} == {v.tobytes() for v in tiled.queries}
    # no base row is a query or a noisy copy of one: copies only come from seed rows
    assert not np.isin(tiled.source_rows(0, tiled.n), held).any()
    assert not any((x == v).all(axis=1).any() for v in tiled.queries)
    # copies sit at the scale of real neighbourhoods: a query's best match is close
    assert np.median((tiled.queries @ x.T).max(axis=1)) > 0.9


def test_cells_are_distinct_valid_and_near_their_chip(tiled: TiledSet) -> None:
    cells = tiled.cells()
    assert len(np.unique(cells)) == tiled.n
    sample = cells[::97]
    assert all(h3i.is_valid_cell(int(c)) and h3i.get_resolution(int(c)) == CELL_RES for c in sample)
    chip = tiled.real.chip[tiled.source_rows(0, tiled.n)]
    parents = h3grid.cell_parents(sample, PARENT_RES)
    want = [h3i.latlng_to_cell(tiled.real.lat[c], tiled.real.lon[c], PARENT_RES) for c in chip[::97]]
    assert list(parents) == want


def test_batched_wkb_matches_h3grid(tiled: TiledSet) -> None:
    cells = tiled.cells()[:500]
    pent = np.array(list(h3i.get_pentagons(4))[:2], dtype=np.uint64)
    both = np.concatenate([cells, pent])
    assert cells_wkb(both) == [h3grid.cell_wkb(int(c)) for c in both]

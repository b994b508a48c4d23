"""Pixel pooling: cells of pixel centres (block shortcut) and pooled means, against exact oracles."""

from __future__ import annotations

from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from bench import product_layouts as pl
from embedder.importers.pool import block_size, pixel_area_m2, pool_pixels, window_cells
from embedder.importers.satellite_embedding import EmbeddingRaster
from tests.conftest import DATA

L8 = DATA / "landsat8" / "l8_B1.tif"


def brute_cells(t: Affine, crs: str, rows: slice, cols: slice, res: int) -> np.ndarray:
    """The oracle: every pixel centre's cell, one h3 call each."""
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=np.uint64)
    for i, r in enumerate(range(rows.start, rows.stop)):
        for j, c in enumerate(range(cols.start, cols.stop)):
            x = t.a * (c + 0.5) + t.b * (r + 0.5) + t.c
            y = t.d * (c + 0.5) + t.e * (r + 0.5) + t.f
            lon, lat = to_ll.transform(x, y)
            out[i, j] = h3i.latlng_to_cell(lat, lon, res)
    return out


@pytest.mark.parametrize("orientation", ["north-up", "bottom-up", "geographic"])
def test_window_cells_match_pixel_by_pixel(orientation: str) -> None:
    with rasterio.open(L8) as src:  # the real scene's grid, refined to 10 m
        t0, crs = src.transform, "EPSG:32616"
    t = Affine(10.0, 0.0, t0.c, 0.0, -10.0, t0.f)
    if orientation == "bottom-up":
        t = Affine(10.0, 0.0, t0.c, 0.0, 10.0, t0.f - 18_000)
    if orientation == "geographic":
        t, crs = Affine(9e-5, 0.0, -87.49, 0.0, -9e-5, 30.80), "EPSG:4326"
    rng = np.random.default_rng(3)
    for _ in range(6):
        r0, c0 = (int(v) for v in rng.integers(0, 1500, 2))
        h, w = (int(v) for v in rng.integers(1, 140, 2))
        res = int(rng.integers(6, 10))
        rows, cols = slice(r0, r0 + h), slice(c0, c0 + w)
        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        got = window_cells(t, to_ll, rows, cols, res, block_size(res, 10.0))
        assert np.array_equal(got, brute_cells(t, crs, rows, cols, res)), (orientation, r0, c0, h, w, res)


def test_pooled_means_equal_a_numpy_oracle(tex_l8, tmp_path: Path) -> None:
    """A Satellite Embedding file pooled at res 7 (cells mixing many res-8 vectors) equals numpy's means."""
    ref = pl.unit(tex_l8.vectors @ pl.projection(tex_l8.vectors.shape[1], 64))
    box = (-87.45, 30.70, -87.42, 30.73)
    path = pl.write_aef_cog(tmp_path / "2015" / "a.tiff", pl.Field(tex_l8.cells, ref, 8), box, 32616)
    src = EmbeddingRaster(str(path), 2015)
    pooled, stats = pool_pixels([src], 7, spread=True)

    with rasterio.open(path) as f:
        q = f.read()
        t = f.transform
    rows, cols = slice(0, q.shape[1]), slice(0, q.shape[2])
    cells = brute_cells(t, "EPSG:32616", rows, cols, 7).ravel()
    v = q.reshape(64, -1).T.astype(np.float64) / 127.5
    v = np.sign(v) * v * v
    valid = ~(q == -128).any(axis=0).ravel()
    assert stats.pixels_valid == int(valid.sum()) and stats.pixels_read == valid.size
    assert np.array_equal(pooled.cells, np.unique(cells[valid]))
    area = pixel_area_m2(src)
    for k, c in enumerate(pooled.cells.tolist()):
        sel = valid & (cells == c)
        mean = v[sel].mean(axis=0)
        assert pooled.count[k] == sel.sum()
        assert np.allclose(pooled.vectors[k], mean / np.linalg.norm(mean), atol=1e-6)
        unit_mean = (v[sel] / np.linalg.norm(v[sel], axis=1, keepdims=True)).mean(axis=0)
        assert pooled.spread is not None and abs(pooled.spread[k] - (1 - np.linalg.norm(unit_mean))) < 1e-5
        expected_vf = min(1.0, sel.sum() * area / h3i.cell_area(c, unit="m^2"))
        assert abs(pooled.valid_fraction[k] - expected_vf) < 1e-5
    assert (pooled.spread > 1e-4).any(), "res-7 cells pool several res-8 vectors: some spread expected"

"""Pooling per-pixel embeddings into H3 cells: the shared core of the pixel-product importers.

A pixel product (Satellite Embedding, TESSERA) is read window by window in its own CRS;
each valid pixel goes to the H3 cell containing its centre, and a cell's vector is the mean
of its pixels' de-quantised vectors, renormalised to unit length. Each cell also gets its
pixel count, its valid fraction (valid pixel area over the cell's area, at most 1) and,
optionally, its spread ``1 - |mean of the unit pixel vectors|`` (the pyramid's measure).

Finding the cell of millions of pixel centres is the cost. Pixels are visited in square
blocks a fraction of a cell wide: a block whose four corner pixels and centre pixel lie in
one cell is assigned whole (a pixel block is convex and so is a cell, at this scale), every
other block pixel by pixel. Accumulation is exact (float64 sums), so the result does not
depend on the window size or the order of the files, and cells split across files
(adjacent tiles) pool across them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import h3.api.basic_int as h3i
import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from tqdm.auto import tqdm

from embedder.warp import footprint_size_m

WINDOW_PX = 256
"""Pixels per side of the windows read at once (memory: WINDOW_PX**2 x dim x 8 bytes)."""
MAX_BLOCK_PX = 32
MIN_BLOCK_PX = 8


class PixelSource(Protocol):
    """One raster of per-pixel embeddings in any CRS."""

    path: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    dim: int

    def read(self, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
        """De-quantised vectors ``(h * w, dim)`` float32 (row-major) and their validity ``(h * w,)``."""
        ...


def pixel_area_m2(src: PixelSource) -> float:
    """Area of one pixel in square metres, measured through the raster's centre."""
    t = src.transform
    bounds = (t.c, t.f + t.e * src.height, t.c + t.a * src.width, t.f)
    left, right = sorted(bounds[0::2])
    bottom, top = sorted(bounds[1::2])
    w, h = footprint_size_m(src.crs, (left, bottom, right, top))
    return (w / src.width) * (h / src.height)


def block_size(res: int, px_m: float) -> int:
    """Side in pixels of the first blocks: about a cell edge, at most :data:`MAX_BLOCK_PX`."""
    edge = h3i.average_hexagon_edge_length(res, unit="m")
    return int(min(MAX_BLOCK_PX, max(1, edge / px_m)))


def _cells_at(t: Affine, to_ll: Transformer, rows: np.ndarray, cols: np.ndarray, res: int) -> np.ndarray:
    """H3 cells (uint64) of the pixel centres ``(rows[i], cols[i])``."""
    c, r = np.asarray(cols, dtype=np.float64) + 0.5, np.asarray(rows, dtype=np.float64) + 0.5
    x = t.a * c + t.b * r + t.c
    y = t.d * c + t.e * r + t.f
    lon, lat = to_ll.transform(x, y)
    return np.fromiter(
        (
            h3i.latlng_to_cell(a, b, res)
            for a, b in zip(np.ravel(lat).tolist(), np.ravel(lon).tolist(), strict=True)
        ),
        dtype=np.uint64,
        count=np.size(lat),
    )


def window_cells(t: Affine, to_ll: Transformer, rows: slice, cols: slice, res: int, block: int) -> np.ndarray:
    """H3 cell of every pixel centre of a window, ``(h, w)`` uint64 (see the module docstring).

    Blocks whose corner and centre pixels disagree are split in four, level by level
    (one vectorised coordinate transform per level), down to 2x2 pixels, which are
    computed pixel by pixel.
    """
    r0, c0 = rows.start, cols.start
    h, w = rows.stop - r0, cols.stop - c0
    if block < MIN_BLOCK_PX:  # cells a few pixels wide: pixel by pixel is cheaper
        rr, cc = np.mgrid[0:h, 0:w]
        return _cells_at(t, to_ll, rr.ravel() + r0, cc.ravel() + c0, res).reshape(h, w)
    out = np.zeros((h, w), dtype=np.uint64)
    # blocks as rows of (top, bottom, left, right), half-open, window-relative
    tops, lefts = np.meshgrid(np.arange(0, h, max(block, 1)), np.arange(0, w, max(block, 1)), indexing="ij")
    blk = np.stack(
        [
            tops.ravel(),
            np.minimum(tops.ravel() + block, h),
            lefts.ravel(),
            np.minimum(lefts.ravel() + block, w),
        ],
        axis=1,
    )
    small: list[np.ndarray] = []
    while len(blk):
        size = np.maximum(blk[:, 1] - blk[:, 0], blk[:, 3] - blk[:, 2])
        tiny = size <= 2
        small.append(blk[tiny])
        blk = blk[~tiny]
        if not len(blk):
            break
        top, bot, left, right = blk[:, 0], blk[:, 1] - 1, blk[:, 2], blk[:, 3] - 1
        pr = np.stack([top, top, bot, bot, (top + bot) // 2], axis=1).ravel()
        pc = np.stack([left, right, left, right, (left + right) // 2], axis=1).ravel()
        key, inv = np.unique(pr * w + pc, return_inverse=True)
        cells = _cells_at(t, to_ll, key // w + r0, key % w + c0, res)[inv].reshape(-1, 5)
        uniform = (cells == cells[:, :1]).all(axis=1)
        for (a, b, c, d), v in zip(blk[uniform].tolist(), cells[uniform, 0].tolist(), strict=True):
            out[a:b, c:d] = v
        mixed = blk[~uniform]
        mr, mc = (mixed[:, 0] + mixed[:, 1]) // 2, (mixed[:, 2] + mixed[:, 3]) // 2
        blk = np.concatenate(
            [
                np.stack([mixed[:, 0], mr, mixed[:, 2], mc], axis=1),
                np.stack([mixed[:, 0], mr, mc, mixed[:, 3]], axis=1),
                np.stack([mr, mixed[:, 1], mixed[:, 2], mc], axis=1),
                np.stack([mr, mixed[:, 1], mc, mixed[:, 3]], axis=1),
            ]
        )
        blk = blk[(blk[:, 1] > blk[:, 0]) & (blk[:, 3] > blk[:, 2])]
    tiny = np.concatenate(small) if small else np.zeros((0, 4), dtype=np.int64)
    if len(tiny):  # every pixel of the <= 2x2 blocks, at once
        dr, dc = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
        pr = (tiny[:, :1] + dr).ravel()
        pc = (tiny[:, 2:3] + dc).ravel()
        inside = (pr < np.repeat(tiny[:, 1], 4)) & (pc < np.repeat(tiny[:, 3], 4))
        pr, pc = pr[inside], pc[inside]
        out[pr, pc] = _cells_at(t, to_ll, pr + r0, pc + c0, res)
    return out


@dataclass
class PooledCells:
    """Pooled rows: one per cell, sorted by cell id.

    Attributes:
        cells: (N,) uint64 H3 cells.
        vectors: (N, D) float32 unit vectors (mean of the pixels, renormalised).
        count: (N,) pixels (or chips) pooled into each cell.
        valid_fraction: (N,) float32 valid area over cell area (1.0 for chips).
        spread: (N,) float32 ``1 - |mean unit vector|`` or ``None``.
        sources: per cell, the indices (into the caller's file list) of the files that fed it.
    """

    cells: np.ndarray
    vectors: np.ndarray
    count: np.ndarray
    valid_fraction: np.ndarray
    spread: np.ndarray | None
    sources: list[list[int]]


FEW_GROUPS = 32


def _group_sums(vectors: np.ndarray, inv: np.ndarray, n: int) -> np.ndarray:
    """Float64 sums of the rows of ``vectors`` per group number ``inv`` (0..n-1)."""
    if n <= FEW_GROUPS:  # a mask per group beats sorting the rows
        return np.stack([np.add.reduce(vectors[inv == k], axis=0, dtype=np.float64) for k in range(n)])
    order = np.argsort(inv, kind="stable")
    starts = np.flatnonzero(np.r_[True, inv[order][1:] != inv[order][:-1]])
    return np.add.reduceat(np.take(vectors, order, axis=0), starts, axis=0, dtype=np.float64)


class CellAccumulator:
    """Float64 sums of vectors per cell, growing as new cells arrive."""

    def __init__(self, dim: int, spread: bool) -> None:
        self.dim = dim
        self.spread = spread
        self.index: dict[int, int] = {}
        self.sums = np.zeros((1024, dim))
        self.unit_sums = np.zeros((1024, dim)) if spread else None
        self.counts = np.zeros(1024, dtype=np.int64)
        self.area = np.zeros(1024)
        self.sources: list[set[int]] = []

    def _rows(self, cells: np.ndarray) -> np.ndarray:
        rows = np.empty(len(cells), dtype=np.int64)
        for k, c in enumerate(cells.tolist()):
            r = self.index.get(c)
            if r is None:
                r = self.index[c] = len(self.index)
                self.sources.append(set())
            rows[k] = r
        n = len(self.index)
        if n > len(self.counts):
            grow = max(n, 2 * len(self.counts))
            self.sums = np.resize(self.sums, (grow, self.dim))
            self.sums[len(self.counts) :] = 0
            if self.unit_sums is not None:
                self.unit_sums = np.resize(self.unit_sums, (grow, self.dim))
                self.unit_sums[len(self.counts) :] = 0
            self.area = np.r_[self.area, np.zeros(grow - len(self.counts))]
            self.counts = np.r_[self.counts, np.zeros(grow - len(self.counts), dtype=np.int64)]
        return rows

    def add(self, cells: np.ndarray, vectors: np.ndarray, source: int, px_area: float = 0.0) -> None:
        """Add ``vectors`` (n, D) of pixels or chips lying in ``cells`` (n,), read from file ``source``."""
        if len(cells) == 0:
            return
        uniq, inv, cnt = np.unique(cells, return_inverse=True, return_counts=True)
        rows = self._rows(uniq)
        self.sums[rows] += _group_sums(vectors, inv, len(uniq))
        if self.unit_sums is not None:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self.unit_sums[rows] += _group_sums(vectors / np.where(norms > 0, norms, 1.0), inv, len(uniq))
        self.counts[rows] += cnt
        self.area[rows] += cnt * px_area
        for r in rows.tolist():
            self.sources[r].add(source)

    def result(self, cell_fraction: bool) -> PooledCells:
        """The pooled rows, sorted by cell; valid fraction from areas (pixels) or 1.0 (chips)."""
        n = len(self.index)
        cells = np.fromiter(self.index.keys(), dtype=np.uint64, count=n)
        rows = np.fromiter(self.index.values(), dtype=np.int64, count=n)
        order = np.argsort(cells)
        cells, rows = cells[order], rows[order]
        mean = self.sums[rows] / self.counts[rows, None]
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        keep = norm[:, 0] > 0
        vectors = (mean / np.where(norm > 0, norm, 1.0)).astype(np.float32)
        spread = None
        if self.unit_sums is not None:
            unit_mean = self.unit_sums[rows] / self.counts[rows, None]
            spread = (1.0 - np.linalg.norm(unit_mean, axis=1)).clip(0.0, 1.0).astype(np.float32)
        if cell_fraction:
            cell_area = np.array([h3i.cell_area(int(c), unit="m^2") for c in cells.tolist()])
            vf = np.minimum(1.0, self.area[rows] / cell_area).astype(np.float32)
        else:
            vf = np.ones(n, dtype=np.float32)
        return PooledCells(
            cells=cells[keep],
            vectors=vectors[keep],
            count=self.counts[rows][keep],
            valid_fraction=vf[keep],
            spread=None if spread is None else spread[keep],
            sources=[sorted(self.sources[r]) for r, k in zip(rows.tolist(), keep.tolist(), strict=True) if k],
        )


@dataclass
class PixelStats:
    """What pixel pooling read: pixels in the files and valid pixels pooled."""

    pixels_read: int = 0
    pixels_valid: int = 0


def windows(height: int, width: int, size: int = WINDOW_PX) -> Iterator[tuple[slice, slice]]:
    """Square windows covering a raster, row by row."""
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield slice(r, min(r + size, height)), slice(c, min(c + size, width))


def pool_pixels(
    sources: Iterable[PixelSource], res: int, *, spread: bool = False, progress: bool = False
) -> tuple[PooledCells, PixelStats]:
    """Pool every valid pixel of ``sources`` into the H3 cells (at ``res``) of the pixel centres.

    Args:
        sources: the rasters, in any CRS; their index in this sequence identifies them in
            :attr:`PooledCells.sources`.
        res: H3 resolution of the output cells.
        spread: also compute each cell's spread.
        progress: show a progress bar over windows.
    """
    srcs = list(sources)
    acc: CellAccumulator | None = None
    stats = PixelStats()
    total = sum(math.ceil(s.height / WINDOW_PX) * math.ceil(s.width / WINDOW_PX) for s in srcs)
    bar = tqdm(total=total, desc="pooling pixels", unit="window", disable=not progress)
    try:
        for i, src in enumerate(srcs):
            acc = acc or CellAccumulator(src.dim, spread)
            area = pixel_area_m2(src)
            block = block_size(res, math.sqrt(area))
            to_ll = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
            for rows, cols in windows(src.height, src.width):
                bar.update(1)
                vecs, valid = src.read(rows, cols)
                stats.pixels_read += len(valid)
                if not valid.any():
                    continue
                cells = window_cells(src.transform, to_ll, rows, cols, res, block).ravel()
                if valid.all():
                    acc.add(cells, vecs, i, area)
                else:
                    acc.add(cells[valid], vecs[valid], i, area)
                stats.pixels_valid += int(valid.sum())
    finally:
        bar.close()
    if acc is None:
        acc = CellAccumulator(1, spread)
    return acc.result(cell_fraction=True), stats

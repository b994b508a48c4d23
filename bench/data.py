"""Benchmark vectors built from real imagery: EuroSAT patch spectra tiled up to millions.

How the set is made (the benchmark's JSON records every parameter):

1. **Real vectors.** Every EuroSAT-MS chip (13 bands, 64x64 px at 10 m) is cut into 4x4-pixel
   patches (40 m). A patch's 13 x 16 = 208 standardised reflectances (scaled and standardised
   with the ``sentinel2-l1c-eurosat`` preset of ``embedder/sensors.json``) are projected to
   128-d (or another ``dim``) by one fixed Gaussian random matrix (seed 0) and L2-normalised.
   369 chips give 94,464 real vectors with real spectral and spatial structure.
2. **Held-out queries.** ``n_queries`` real vectors drawn at random are removed from the seed
   pool and never enter the base set (nor do noisy copies of them).
3. **Tiling up.** The base set starts with every remaining real vector; the rest are noisy
   copies: ``normalise(seed + sigma * g / sqrt(d))`` with ``g`` standard normal and ``seed`` a
   real vector drawn uniformly. ``sigma`` equals the median distance from a real vector to its
   nearest other real vector, so the copies spread at the scale of the real neighbourhoods.
   Blocks are generated from ``(seed, block number)`` alone, so any block can be rebuilt
   without the others (the 10M set is never held in RAM).
4. **Places.** Each base vector gets a distinct H3 cell: copies of a patch of chip ``c`` are
   numbered children (resolution :data:`CELL_RES`) of the resolution-:data:`PARENT_RES` cell
   holding chip ``c``'s centre, so similar vectors sit near their real chip's location and a
   region filter (a coarse cell = an id range) selects a real neighbourhood of rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np

from embedder.h3grid import min_child
from embedder.sensors import get_sensor

SENSOR = "sentinel2-l1c-eurosat"
PATCH = 4
DIM = 128
PARENT_RES = 5
CELL_RES = 11
DIGITS = CELL_RES - PARENT_RES  # base-7 digits of a child's number


@dataclass
class RealVectors:
    """Real patch vectors and where they come from."""

    vectors: np.ndarray  # (N, DIM) float32 unit rows
    chip: np.ndarray  # (N,) int32 index into ``chips``
    chips: list[str]  # manifest paths
    labels: list[str]  # land-cover class per chip
    lat: np.ndarray  # (n_chips,) chip centre latitude
    lon: np.ndarray  # (n_chips,) chip centre longitude


def read_manifest(root: Path) -> list[dict[str, str]]:
    """Rows of ``eurosat_ms/manifest.csv``."""
    with (root / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def patch_features(raw: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float) -> np.ndarray:
    """Standardised 4x4-patch spectra (n_patches, C * PATCH * PATCH) of one (C, H, W) chip."""
    c, h, w = raw.shape
    x = (raw.astype(np.float32) * scale - mean[:, None, None]) / std[:, None, None]
    hp, wp = h // PATCH, w // PATCH
    x = x[:, : hp * PATCH, : wp * PATCH].reshape(c, hp, PATCH, wp, PATCH)
    return x.transpose(1, 3, 0, 2, 4).reshape(hp * wp, c * PATCH * PATCH)


def projection(in_dim: int, out_dim: int = DIM, seed: int = 0) -> np.ndarray:
    """The fixed Gaussian random projection (in_dim, out_dim)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((in_dim, out_dim)) / np.sqrt(out_dim)).astype(np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    """Unit-length rows (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load_real_vectors(eurosat_root: str | Path, chip_step: int = 1, dim: int = DIM) -> RealVectors:
    """Real ``dim``-d (default 128) patch vectors of the EuroSAT chips listed in the manifest.

    Args:
        eurosat_root: folder with ``manifest.csv`` and ``tif/``.
        chip_step: use every ``chip_step``-th chip (1 = all 369).
        dim: output dimension of the random projection (the 128-d set is the default; the
            100M-vector scale benchmark uses 64).
    """
    import rasterio

    root = Path(eurosat_root)
    sensor = get_sensor(SENSOR)
    mean = np.array([b.mean for b in sensor.bands], dtype=np.float32)
    std = np.array([b.std for b in sensor.bands], dtype=np.float32)
    rows = read_manifest(root)[::chip_step]
    proj: np.ndarray | None = None
    feats, chip_of = [], []
    for i, row in enumerate(rows):
        with rasterio.open(root / row["path"]) as src:
            raw = src.read()
        f = patch_features(raw, mean, std, sensor.scale)
        if proj is None:
            proj = projection(f.shape[1], dim)
        feats.append(normalise(f @ proj))
        chip_of.append(np.full(len(f), i, dtype=np.int32))
    return RealVectors(
        vectors=np.concatenate(feats),
        chip=np.concatenate(chip_of),
        chips=[r["path"] for r in rows],
        labels=[r["label"] for r in rows],
        lat=np.array([float(r["center_lat"]) for r in rows]),
        lon=np.array([float(r["center_lon"]) for r in rows]),
    )


def nn_distance(x: np.ndarray, sample: int = 5000, seed: int = 0) -> np.ndarray:
    """Distance from ``sample`` random rows to their nearest other row (exact, IndexFlatIP)."""
    import faiss

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sims, _ = index.search(x[pick], 2)
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * sims[:, 1]))


@dataclass
class TiledSet:
    """A reproducible base set of ``n`` vectors tiled from real seeds, plus held-out queries."""

    real: RealVectors
    n: int
    n_queries: int = 1000
    seed: int = 0
    block: int = 100_000
    sigma: float = field(init=False)
    queries: np.ndarray = field(init=False)
    query_chip: np.ndarray = field(init=False)
    seed_idx: np.ndarray = field(init=False)
    _slot: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        total = len(self.real.vectors)
        held = rng.choice(total, size=self.n_queries, replace=False)
        keep = np.ones(total, dtype=bool)
        keep[held] = False
        self.queries = self.real.vectors[held]
        self.query_chip = self.real.chip[held]
        self.seed_idx = np.flatnonzero(keep)
        self.sigma = float(np.median(nn_distance(self.real.vectors[self.seed_idx])))
        self._slot = self._parent_slots()

    @property
    def dim(self) -> int:
        """Vector dimension (of the real vectors the set is tiled from)."""
        return int(self.real.vectors.shape[1])

    def describe(self) -> dict[str, object]:
        """Parameters that define the set (for the JSON report)."""
        return {
            "source": f"EuroSAT-MS 4x4-pixel patch spectra (13 bands), random projection to {self.dim}-d",
            "real_vectors": int(len(self.real.vectors)),
            "seed_vectors": int(len(self.seed_idx)),
            "queries": self.n_queries,
            "queries_are": "held-out real patch vectors (no copies of them in the base)",
            "n": self.n,
            "dim": self.dim,
            "noise_sigma": round(self.sigma, 5),
            "noise": "copy = normalise(seed + sigma * N(0, I) / sqrt(d)), seed uniform",
            "cells": f"distinct H3 res-{CELL_RES} children of the chip's res-{PARENT_RES} cell",
            "seed": self.seed,
        }

    # -- the base set, block by block -------------------------------------------------------

    def n_blocks(self) -> int:
        """Number of blocks of the base set."""
        return -(-self.n // self.block)

    def block_rows(self, b: int) -> tuple[int, int]:
        """Row range ``[start, stop)`` of block ``b``."""
        start = b * self.block
        return start, min(self.n, start + self.block)

    def _block_sources(self, b: int) -> np.ndarray:
        start, stop = self.block_rows(b)
        rows = np.arange(start, stop)
        n_seeds = len(self.seed_idx)
        src = np.empty(len(rows), dtype=np.int64)
        direct = rows < n_seeds
        src[direct] = self.seed_idx[rows[direct]]
        if (~direct).any():
            rng = np.random.default_rng([self.seed, 1, b])
            src[~direct] = self.seed_idx[rng.integers(0, n_seeds, int((~direct).sum()))]
        return src

    def _block_vectors(self, b: int) -> np.ndarray:
        start, stop = self.block_rows(b)
        x = self.real.vectors[self._block_sources(b)]
        noisy = np.arange(start, stop) >= len(self.seed_idx)
        if noisy.any():
            rng = np.random.default_rng([self.seed, 2, b])
            g = rng.standard_normal((int(noisy.sum()), self.dim), dtype=np.float32)
            x[noisy] += (self.sigma / np.sqrt(self.dim)) * g
            x[noisy] = normalise(x[noisy])
        return x

    def _rows(self, start: int, stop: int, part: Callable[[int], np.ndarray]) -> np.ndarray:
        pieces = []
        for b in range(start // self.block, -(-stop // self.block)):
            s, _ = self.block_rows(b)
            pieces.append(part(b)[max(start - s, 0) : stop - s])
        return np.concatenate(pieces)

    def source_rows(self, start: int, stop: int) -> np.ndarray:
        """Index into ``real.vectors`` of the seed behind each base row in ``[start, stop)``."""
        return self._rows(start, stop, self._block_sources)

    def vectors(self, start: int, stop: int) -> np.ndarray:
        """Base rows ``[start, stop)`` as float32 unit vectors (a block is the unit of work)."""
        return self._rows(start, stop, self._block_vectors)

    def labels(self) -> np.ndarray:
        """Land-cover class (of the real chip behind it) of every base row."""
        chip = np.concatenate([self.real.chip[self._block_sources(b)] for b in range(self.n_blocks())])
        return np.asarray(self.real.labels, dtype=object)[chip]

    def blocks(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, vectors)`` for every block."""
        for b in range(self.n_blocks()):
            start, stop = self.block_rows(b)
            yield start, stop, self.vectors(start, stop)

    def matrix(self) -> np.ndarray:
        """The whole base set as one array (only for sets that fit in RAM)."""
        out = np.empty((self.n, self.dim), dtype=np.float32)
        for start, stop, x in self.blocks():
            out[start:stop] = x
        return out

    # -- places -----------------------------------------------------------------------------

    def _parent_slots(self) -> np.ndarray:
        """Per chip: res-PARENT_RES cell containing its centre (pentagons never occur here)."""
        return np.array(
            [h3i.latlng_to_cell(a, b, PARENT_RES) for a, b in zip(self.real.lat, self.real.lon, strict=True)],
            dtype=np.uint64,
        )

    def cells(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Distinct H3 cells (uint64) of base rows ``[start, stop)``.

        Row ``i`` whose seed comes from chip ``c`` gets the ``k``-th res-``CELL_RES`` child
        of chip ``c``'s parent cell, ``k`` counting the rows before it with the same parent.
        Numbering runs over all rows, so call it once for the whole set when ``n`` is large
        enough to matter (it is vectorised: a few seconds for 10M rows).
        """
        stop = self.n if stop is None else stop
        parents = np.empty(self.n, dtype=np.uint64)
        for b in range(self.n_blocks()):
            s, e = self.block_rows(b)
            parents[s:e] = self._slot[self.real.chip[self._block_sources(b)]]
        order = np.argsort(parents, kind="stable")
        sp = parents[order]
        first = np.r_[0, np.flatnonzero(sp[1:] != sp[:-1]) + 1]
        run_start = np.repeat(first, np.diff(np.r_[first, len(sp)]))
        k = np.empty(self.n, dtype=np.int64)
        k[order] = np.arange(self.n) - run_start
        if k.max() >= 7**DIGITS:
            raise ValueError(f"too many rows for one res-{PARENT_RES} parent; raise CELL_RES")
        base = {int(p): min_child(int(p), CELL_RES) for p in np.unique(parents)}
        cells = np.array([base[int(p)] for p in parents[start:stop]], dtype=np.uint64)
        digits = k[start:stop].copy()
        for r in range(CELL_RES, PARENT_RES, -1):  # finest digit first
            shift = np.uint64((15 - r) * 3)
            cells = cells | (np.uint64(1) * (digits % 7).astype(np.uint64) << shift)
            digits //= 7
        return cells

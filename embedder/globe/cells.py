"""Enumerating the H3 cells of the whole planet (or its land) in blocks, one parent at a time.

Every cell at resolution ``res`` is a child of one of the 122 resolution-0 cells; a block is
the children of one parent at ``partition_res``, so memory stays bounded and blocks map
one-to-one onto the Parquet partitions of a database. Land cells are the children whose
centre has land within about one cell radius (GLOBE mask), which keeps a coastal ring.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import h3
import h3.api.basic_int as h3i
import numpy as np

from embedder.batch import ChipBatch
from embedder.errors import QueryError
from embedder.globe.layers import METRES_PER_DEGREE, GlobalLayers

MAX_RES = 15


@dataclass(frozen=True)
class CellBlock:
    """Cells of one partition parent with their centres.

    Attributes:
        parent: the partition cell (uint64 id) the cells descend from.
        cells: (N,) uint64 H3 ids, sorted.
        lat: (N,) centre latitudes.
        lon: (N,) centre longitudes.
    """

    parent: int
    cells: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    def __len__(self) -> int:
        return int(self.cells.size)

    def take(self, rows: np.ndarray | slice) -> CellBlock:
        """The cells at ``rows``."""
        return CellBlock(self.parent, self.cells[rows], self.lat[rows], self.lon[rows])


def check_res(res: int, partition_res: int) -> None:
    """Validate a cell resolution and its partition resolution.

    Raises:
        QueryError: when either is out of range or the partition is finer than the cells.
    """
    if not 0 <= res <= MAX_RES:
        raise QueryError(f"H3 resolution {res} is out of range; use 0..{MAX_RES} (5 is ~250 km2 cells)")
    if not 0 <= partition_res <= res:
        raise QueryError(f"partition resolution {partition_res} must lie in 0..{res} (the cell resolution)")


def default_partition_res(res: int) -> int:
    """A partition resolution giving at most 7**5 = 16,807 cells per block."""
    return max(0, res - 5)


def partition_cells(partition_res: int) -> np.ndarray:
    """Every cell at ``partition_res``, sorted (uint64)."""
    base = sorted(h3i.get_res0_cells())
    if partition_res == 0:
        return np.array(base, dtype=np.uint64)
    kids = [h3i.cell_to_children(b, partition_res) for b in base]
    return np.sort(np.array([c for ks in kids for c in ks], dtype=np.uint64))


def centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre latitude and longitude arrays of integer cells."""
    pts = np.array([h3i.cell_to_latlng(c) for c in cells.tolist()], dtype=np.float64)
    pts = pts.reshape(-1, 2)
    return pts[:, 0], pts[:, 1]


def cell_radius_deg(res: int) -> float:
    """Average hexagon edge length at ``res`` (= circumradius) in degrees of latitude."""
    return float(h3.average_hexagon_edge_length(res, unit="m")) / METRES_PER_DEGREE


def children_block(parent: int, res: int) -> CellBlock:
    """All children of ``parent`` at ``res`` with their centres."""
    cells = np.sort(np.array(h3i.cell_to_children(int(parent), res), dtype=np.uint64))
    lat, lon = centres(cells)
    return CellBlock(int(parent), cells, lat, lon)


def land_block(layers: GlobalLayers, block: CellBlock, res: int) -> CellBlock:
    """The cells of ``block`` with land within one cell radius of their centre."""
    keep = layers.is_land(block.lat, block.lon, ring_deg=cell_radius_deg(res))
    return block.take(np.flatnonzero(keep))


def iter_blocks(
    layers: GlobalLayers | None,
    res: int,
    partition_res: int | None = None,
    land_only: bool = True,
    limit: int | None = None,
    parents: np.ndarray | None = None,
) -> Iterator[CellBlock]:
    """Yield non-empty cell blocks, one per partition parent, in id order.

    Args:
        layers: the global layers (needed when ``land_only``).
        res: cell resolution.
        partition_res: resolution of the block parents; default :func:`default_partition_res`.
        land_only: keep only land (and coastal) cells.
        limit: stop after this many cells in total (the last block is cut).
        parents: restrict to these partition parents (default all).

    Raises:
        QueryError: for bad resolutions or when ``land_only`` is asked without layers.
    """
    pres = default_partition_res(res) if partition_res is None else partition_res
    check_res(res, pres)
    if land_only and layers is None:
        raise QueryError("land_only needs the global layers (for the land mask); pass layers=")
    todo = partition_cells(pres) if parents is None else np.asarray(parents, dtype=np.uint64)
    left = limit
    for parent in todo.tolist():
        if left is not None and left <= 0:
            return
        block = children_block(parent, res)
        if land_only:
            assert layers is not None
            block = land_block(layers, block, res)
        if left is not None:
            block = block.take(slice(0, left))
            left -= len(block)
        if len(block):
            yield block


def cell_chips(layers: GlobalLayers, cells: np.ndarray) -> tuple[ChipBatch, np.ndarray, np.ndarray]:
    """Aligned multimodal chips centred on H3 cells, with the cell centres (lat, lon)."""
    lat, lon = centres(np.asarray(cells, dtype=np.uint64))
    return layers.chips(lat, lon), lat, lon

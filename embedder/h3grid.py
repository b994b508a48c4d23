"""H3 helpers on integer cell ids: parsing user input, centres, parents and cell polygons.

This is the one home of cell geometry: parents (vectorised bit operations, checked against
``h3.cell_to_parent``), polygons as unwrapped lon/lat rings (a cell crossing the
antimeridian stays one small polygon), as GeoJSON coordinates and as WKB (built with
shapely, many cells at once).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import chain

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely

from embedder.errors import QueryError

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), for great-circle distances."""


def parse_cell(value: str | int) -> int:
    """Turn a user-given H3 cell (hex string or integer) into an int id.

    Raises:
        QueryError: if ``value`` is not a valid H3 cell.
    """
    try:
        cell = int(value) if isinstance(value, int | np.integer) else h3.str_to_int(str(value).strip())
    except (ValueError, TypeError, OverflowError) as exc:
        raise QueryError(f"{value!r} is not an H3 cell id; give a hex id such as '8828308281fffff'") from exc
    if not 0 <= cell < 2**63 or not h3i.is_valid_cell(cell):
        raise QueryError(f"{value!r} is not a valid H3 cell id; give a hex id such as '8828308281fffff'")
    return cell


def check_latlon(lat: float, lon: float) -> None:
    """Validate a point.

    Raises:
        QueryError: when latitude or longitude is out of range or not finite.
    """
    if not (np.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise QueryError(f"latitude {lat} is out of range; it must lie in [-90, 90] degrees")
    if not (np.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise QueryError(f"longitude {lon} is out of range; it must lie in [-180, 180] degrees")


def latlon_to_cells(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """Cells (uint64) containing each point at resolution ``res``."""
    lats = np.asarray(lat, dtype=np.float64).tolist()
    lons = np.asarray(lon, dtype=np.float64).tolist()
    return np.fromiter(
        (h3i.latlng_to_cell(a, b, res) for a, b in zip(lats, lons, strict=True)),
        dtype=np.uint64,
        count=len(lat),
    )


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre lat and lon (float64 arrays) of integer cells."""
    pts = np.array([h3i.cell_to_latlng(int(c)) for c in cells], dtype=np.float64).reshape(-1, 2)
    return pts[:, 0], pts[:, 1]


_RES_SHIFT = 52
_DIGIT_BITS = 3
MAX_RES = 15


def cell_parents(cells: np.ndarray, res: int | np.ndarray) -> np.ndarray:
    """Parent (uint64) of each cell at the coarser resolution ``res`` (vectorised).

    An H3 id stores its resolution in bits 52-55 and one 3-bit digit per resolution; the
    parent sets the resolution field to ``res`` and the digits below it to 7 (unused).

    Args:
        cells: valid H3 cell ids.
        res: one resolution for all cells, or one per cell.

    Raises:
        QueryError: when ``res`` is outside 0..15 or finer than a cell's resolution.
    """
    c = np.asarray(cells, dtype=np.uint64)
    r = np.broadcast_to(np.asarray(res, dtype=np.int64), c.shape)
    if r.size and (r.min() < 0 or r.max() > MAX_RES):
        raise QueryError(f"H3 resolution {res} is out of range; use 0..{MAX_RES}")
    own = ((c >> np.uint64(_RES_SHIFT)) & np.uint64(0xF)).astype(np.int64)
    if c.size and bool(np.any(r > own)):
        raise QueryError(f"resolution {res} is finer than some cells' resolution; parents must be coarser")
    out = (c & ~np.uint64(0xF << _RES_SHIFT)) | (r.astype(np.uint64) << np.uint64(_RES_SHIFT))
    # digits below the parent's resolution become 7: (all bits below digit r) per row
    low_bits = ((MAX_RES - r) * _DIGIT_BITS).astype(np.uint64)
    return out | ((np.uint64(1) << low_bits) - np.uint64(1))


def cell_to_str(cell: int) -> str:
    """Hex string of an integer cell."""
    return h3i.int_to_str(int(cell))


def cell_resolution(cell: int) -> int:
    """Resolution of an integer cell."""
    return int(h3i.get_resolution(int(cell)))


def cell_rings(cells: np.ndarray, densify: int | np.ndarray = 1) -> list[np.ndarray]:
    """Closed boundary rings of ``cells`` as (n + 1, 2) lon/lat arrays (OGC:CRS84 order).

    Longitudes are unwrapped so that a cell crossing the antimeridian stays one small
    polygon (some vertices then lie beyond +-180). Rings keep H3's vertex order
    (counterclockwise).

    Args:
        cells: H3 cells.
        densify: points per edge, one number or one per cell. H3 edges are great-circle
            arcs; ``densify`` > 1 adds ``densify - 1`` points along each arc, so the straight
            lon/lat segments follow the curve (for rasterising); 1 keeps H3's vertices only.
    """
    ids = np.asarray(cells, dtype=np.uint64).tolist()
    per_edge = np.broadcast_to(np.asarray(densify, dtype=np.int64), (len(ids),))
    rings = [h3i.cell_to_boundary(c) for c in ids]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, ring in enumerate(rings):
        groups[len(ring), int(per_edge[i])].append(i)
    out: list[np.ndarray] = [np.zeros((0, 2))] * len(ids)
    for (n, d), idx in groups.items():
        flat = chain.from_iterable(chain.from_iterable(rings[i] for i in idx))
        pts = np.fromiter(flat, dtype=np.float64, count=len(idx) * n * 2).reshape(len(idx), n, 2)
        if d > 1:
            pts = _great_circle_points(pts, d)
        m = pts.shape[1]
        coords = np.empty((len(idx), m + 1, 2), dtype=np.float64)
        coords[:, :m, 0] = np.degrees(np.unwrap(np.radians(pts[:, :, 1]), axis=1))
        coords[:, :m, 1] = pts[:, :, 0]
        coords[:, m] = coords[:, 0]
        for k, i in enumerate(idx):
            out[i] = coords[k]
    return out


def _great_circle_points(latlon: np.ndarray, per_edge: int) -> np.ndarray:
    """(G, n, 2) lat/lon ring vertices -> (G, n * per_edge, 2) points along the great-circle edges."""
    lat, lon = np.radians(latlon[..., 0]), np.radians(latlon[..., 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    t = (np.arange(per_edge) / per_edge)[None, None, :, None]
    p = xyz[:, :, None, :] * (1 - t) + np.roll(xyz, -1, axis=1)[:, :, None, :] * t
    p = p.reshape(len(xyz), -1, 3)
    p /= np.linalg.norm(p, axis=-1, keepdims=True)  # the chord's points projected onto the arc
    return np.degrees(np.stack([np.arcsin(np.clip(p[..., 2], -1, 1)), np.arctan2(p[..., 1], p[..., 0])], -1))


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Shapely polygons (lon/lat, unwrapped like :func:`cell_rings`) of ``cells``."""
    rings = cell_rings(cells)
    polys = np.empty(len(rings), dtype=object)
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(rings):
        by_len[len(r)].append(i)
    for idx in by_len.values():
        polys[idx] = shapely.polygons(np.stack([rings[i] for i in idx]))
    return polys


def cells_wkb(cells: np.ndarray) -> list[bytes]:
    """Little-endian 2-D WKB Polygons (lon/lat, OGC:CRS84, longitudes unwrapped) of ``cells``."""
    if len(cells) == 0:
        return []
    return list(shapely.to_wkb(cell_polygons(cells), byte_order=1, output_dimension=2))


def cell_wkb(cell: int) -> bytes:
    """The cell boundary as a little-endian WKB Polygon in lon/lat (see :func:`cells_wkb`)."""
    return cells_wkb(np.array([cell], dtype=np.uint64))[0]


def cell_geojson(cell: int) -> list[list[list[float]]]:
    """GeoJSON ``Polygon`` coordinates of a cell (one closed, unwrapped lon/lat ring)."""
    return [cell_rings(np.array([cell], dtype=np.uint64))[0].tolist()]


def pole_cells(res: int) -> tuple[int, int]:
    """The cells holding the south and the north pole at resolution ``res``."""
    return h3i.latlng_to_cell(-90.0, 0.0, res), h3i.latlng_to_cell(90.0, 0.0, res)


def plate_carree_rings(
    cells: np.ndarray, densify: int | np.ndarray = 1
) -> tuple[list[np.ndarray], np.ndarray]:
    """The area of each cell on the lon/lat plane within -180..180, as closed lon/lat rings.

    What a rasteriser needs: edges follow the great-circle arcs (``densify`` points per
    edge, see :func:`cell_rings`); a cell crossing the antimeridian is given twice, once on
    each side (shifted by 360 degrees); a cell holding a pole is the cap between its
    boundary and the pole, across all longitudes.

    Returns:
        The rings and, for each, the position in ``cells`` of the cell it belongs to.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    rings = cell_rings(cells, densify)
    if len(cells):
        for pole_lat, pole in zip((-90.0, 90.0), pole_cells(cell_resolution(int(cells[0]))), strict=True):
            for i in np.flatnonzero(cells == np.uint64(pole)):
                rings[i] = _pole_cap(rings[i], pole_lat)
    east, west = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if rings:
        x = np.concatenate([r[:, 0] for r in rings])
        starts = np.cumsum([0, *map(len, rings[:-1])])
        east = np.flatnonzero(np.maximum.reduceat(x, starts) > 180.0)
        west = np.flatnonzero(np.minimum.reduceat(x, starts) < -180.0)
    shifted = [rings[i] - [360.0, 0.0] for i in east] + [rings[i] + [360.0, 0.0] for i in west]
    return rings + shifted, np.concatenate([np.arange(len(cells)), east, west]).astype(np.int64)


def _pole_cap(ring: np.ndarray, pole_lat: float) -> np.ndarray:
    """A polar cell's ring as the region between its boundary and the pole on the lon/lat plane."""
    lon = (ring[:-1, 0] + 180.0) % 360.0 - 180.0
    order = np.argsort(lon)
    lon, lat = lon[order], ring[:-1, 1][order]
    edge = np.interp([-180.0, 180.0], lon, lat, period=360.0)
    xs = np.r_[-180.0, -180.0, lon, 180.0, 180.0, -180.0]
    ys = np.r_[pole_lat, edge[0], lat, edge[1], pole_lat, pole_lat]
    return np.column_stack([xs, ys])


def descendant_range(cell: int, res: int) -> tuple[int, int]:
    """Inclusive integer id range holding every descendant of ``cell`` at ``res``.

    At a fixed resolution the descendants of one cell are contiguous in integer order,
    so a region filter can be an id-range test.
    """
    base = cell_resolution(cell)
    if res < base:
        raise QueryError(f"resolution {res} is coarser than the region cell's resolution {base}")
    return min_child(int(cell), res), max_child(int(cell), res)


def _set_digits(cell: int, res: int, digit: int) -> int:
    base = cell_resolution(cell)
    c = cell
    # resolution field: bits 52-55
    c = (c & ~(0xF << 52)) | (res << 52)
    for r in range(base + 1, res + 1):
        shift = (15 - r) * 3
        c = (c & ~(0x7 << shift)) | (digit << shift)
    return c


def min_child(cell: int, res: int) -> int:
    """Smallest id that a descendant of ``cell`` at ``res`` can have."""
    return _set_digits(cell, res, 0)


def max_child(cell: int, res: int) -> int:
    """Largest id that a descendant of ``cell`` at ``res`` can have (digits of 6)."""
    return _set_digits(cell, res, 6)

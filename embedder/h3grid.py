"""H3 helpers on integer cell ids: parsing user input, centres, parents and WKB polygons."""

from __future__ import annotations

import struct

import h3
import h3.api.basic_int as h3i
import numpy as np

from embedder.errors import QueryError


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
    return np.fromiter(
        (h3i.latlng_to_cell(float(a), float(b), res) for a, b in zip(lat, lon, strict=True)),
        dtype=np.uint64,
        count=len(lat),
    )


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre lat and lon (float64 arrays) of integer cells."""
    pts = np.array([h3i.cell_to_latlng(int(c)) for c in cells], dtype=np.float64).reshape(-1, 2)
    return pts[:, 0], pts[:, 1]


def cell_parents(cells: np.ndarray, res: int) -> np.ndarray:
    """Parent (uint64) of each cell at the coarser resolution ``res``."""
    return np.fromiter((h3i.cell_to_parent(int(c), res) for c in cells), dtype=np.uint64, count=len(cells))


def cell_to_str(cell: int) -> str:
    """Hex string of an integer cell."""
    return h3i.int_to_str(int(cell))


def cell_resolution(cell: int) -> int:
    """Resolution of an integer cell."""
    return int(h3i.get_resolution(int(cell)))


def cell_wkb(cell: int) -> bytes:
    """The cell boundary as a little-endian WKB Polygon in lon/lat (OGC:CRS84).

    Longitudes are unwrapped so that a cell crossing the antimeridian stays one small
    polygon (some vertices then lie beyond +-180).
    """
    ring = [(lng, lat) for lat, lng in h3i.cell_to_boundary(int(cell))]
    lons = np.unwrap(np.radians([p[0] for p in ring]))
    ring = [(float(np.degrees(x)), p[1]) for x, p in zip(lons, ring, strict=True)]
    ring.append(ring[0])
    out = bytearray(struct.pack("<BII", 1, 3, 1))
    out += struct.pack("<I", len(ring))
    for x, y in ring:
        out += struct.pack("<dd", x, y)
    return bytes(out)


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

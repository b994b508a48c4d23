"""Filters applied together with a similarity search: region, cells, box, polygon, time, attributes.

A :class:`Filter` evaluates to a boolean mask over a table of rows (the indexed rows, or
Parquet rows when a time range must look past the most recent date) and to a FAISS id
selector. A region cell alone becomes one ``IDSelectorRange``: the descendants of a cell at
the database resolution are one contiguous range of integer ids.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from embedder import contract, h3grid
from embedder.errors import QueryError

_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|=|>|<)\s*(.+?)\s*$")
_WHERE_COLUMNS = (contract.VALID_FRACTION, contract.LAT, contract.LON)
_NON_RANGE_FIELDS = ("bbox", "polygon", "start", "end", "min_valid_fraction", "where")


def parse_time(value: str | datetime | None, name: str) -> datetime | None:
    """A UTC datetime from ISO text or a datetime (naive ones are taken as UTC).

    Raises:
        QueryError: naming ``name`` and the expected format.
    """
    if value is None or isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise QueryError(f"{name} {value!r} is not a date; use ISO format such as 2021-06-30") from exc
    if dt is not None and dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def parse_where(text: str) -> list[tuple[str, str, float]]:
    """Parse ``"valid_fraction >= 0.9 and lat < 50"`` into clauses.

    Raises:
        QueryError: for an unknown column, operator or a non-numeric value.
    """
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if not m:
            raise QueryError(f"cannot read filter {part!r}; write e.g. 'valid_fraction >= 0.9'")
        col, op, val = m.groups()
        if col not in _WHERE_COLUMNS:
            raise QueryError(
                f"filter column {col!r} is not supported; use one of {', '.join(_WHERE_COLUMNS)}"
            )
        try:
            num = float(val)
        except ValueError as exc:
            raise QueryError(f"filter value {val!r} in {part!r} is not a number") from exc
        clauses.append((col, op, num))
    return clauses


@dataclass(frozen=True)
class Filter:
    """Conditions a result row must meet (all of them).

    Attributes:
        region: an H3 cell (hex or int) at or coarser than the database resolution; keeps
            the cells inside it.
        cells: keep only these cells (cells coarser than the database act as regions).
        bbox: ``(min_lon, min_lat, max_lon, max_lat)``; ``min_lon > max_lon`` crosses the
            antimeridian. Tests cell centres.
        polygon: GeoJSON Polygon/MultiPolygon geometry (lon/lat, holes allowed) or a list of
            ``(lat, lon)`` vertices; keeps cells whose centre lies inside (the rule of H3's
            polygon fill), tested on the rows' centres (planar lon/lat, no antimeridian wrap).
        start, end: inclusive time range on the row datetime (rows without one never match).
        min_valid_fraction: keep rows with at least this share of valid pixels.
        where: extra numeric clauses such as ``"valid_fraction >= 0.9 and lat < 50"``.
    """

    region: str | int | None = None
    cells: Sequence[str | int] | None = None
    bbox: tuple[float, float, float, float] | None = None
    polygon: dict[str, Any] | Sequence[tuple[float, float]] | None = None
    start: str | datetime | None = None
    end: str | datetime | None = None
    min_valid_fraction: float | None = None
    where: str | None = None

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return all(getattr(self, f) is None for f in self.__dataclass_fields__)

    @property
    def has_time(self) -> bool:
        """True when a time range is set."""
        return self.start is not None or self.end is not None

    @property
    def region_only(self) -> bool:
        """True when the filter is just one region cell (an id range)."""
        return self.region is not None and Filter(region=self.region) == self

    def id_ranges(self, res: int) -> list[tuple[int, int]] | None:
        """Inclusive id ranges from ``region`` and coarse ``cells``; ``None`` when unrestricted."""
        if self.region is None:
            return None
        return [_range(self.region, res)]

    def time_bounds(self) -> tuple[datetime | None, datetime | None]:
        """Parsed ``(start, end)``.

        Raises:
            QueryError: when ``start`` is after ``end``.
        """
        s, e = parse_time(self.start, "start"), parse_time(self.end, "end")
        if s and e and s > e:
            raise QueryError(f"time range start {s.isoformat()} is after end {e.isoformat()}; swap them")
        return s, e

    def validate(self, res: int) -> None:
        """Check every part against a database at resolution ``res``.

        Raises:
            QueryError: naming the bad part.
        """
        if self.region is not None:
            _range(self.region, res)
        for c in self.cells or ():
            _range(c, res)
        if self.bbox is not None:
            if len(self.bbox) != 4:
                raise QueryError(f"bbox {self.bbox} needs 4 numbers: min_lon, min_lat, max_lon, max_lat")
            x0, y0, x1, y1 = (float(v) for v in self.bbox)
            h3grid.check_latlon(y0, x0)
            h3grid.check_latlon(y1, x1)
            if y0 > y1:
                raise QueryError(f"bbox {self.bbox}: min_lat {y0} is above max_lat {y1}; swap them")
        if self.min_valid_fraction is not None and not 0 <= self.min_valid_fraction <= 1:
            raise QueryError(f"min_valid_fraction {self.min_valid_fraction} must lie in [0, 1]")
        if self.where:
            parse_where(self.where)
        self.time_bounds()
        if self.polygon is not None:
            polygon_rings(self.polygon)

    def arrow_expression(self, res: int) -> pc.Expression | None:
        """The part of the filter Parquet can push down (time, valid fraction, region range)."""
        exprs = []
        s, e = self.time_bounds()
        if s is not None:
            exprs.append(pc.field(contract.DATETIME) >= pa.scalar(s, pa.timestamp("us", tz="UTC")))
        if e is not None:
            exprs.append(pc.field(contract.DATETIME) <= pa.scalar(e, pa.timestamp("us", tz="UTC")))
        if self.min_valid_fraction is not None:
            exprs.append(pc.field(contract.VALID_FRACTION) >= float(self.min_valid_fraction))
        for lo, hi in self.id_ranges(res) or []:
            exprs.append(
                (pc.field(contract.H3) >= pa.scalar(lo, pa.uint64()))
                & (pc.field(contract.H3) <= pa.scalar(hi, pa.uint64()))
            )
        if not exprs:
            return None
        out = exprs[0]
        for x in exprs[1:]:
            out = out & x
        return out

    def mask(self, table: pa.Table, res: int) -> np.ndarray:
        """Boolean mask of the rows of ``table`` (contract columns) meeting every condition."""
        n = table.num_rows
        keep = np.ones(n, dtype=bool)
        if self.empty or n == 0:
            return keep
        ids = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
        for lo, hi in self.id_ranges(res) or []:
            keep &= (ids >= np.uint64(lo)) & (ids <= np.uint64(hi))
        if self.cells is not None:
            keep &= _cells_mask(ids, self.cells, res)
        if self.polygon is not None:
            keep &= points_in_polygon(
                table.column(contract.LAT).to_numpy(),
                table.column(contract.LON).to_numpy(),
                self.polygon,
            )
        if self.bbox is not None:
            lat = table.column(contract.LAT).to_numpy()
            lon = table.column(contract.LON).to_numpy()
            x0, y0, x1, y1 = (float(v) for v in self.bbox)
            inlon = (lon >= x0) & (lon <= x1) if x0 <= x1 else (lon >= x0) | (lon <= x1)
            keep &= inlon & (lat >= y0) & (lat <= y1)
        s, e = self.time_bounds()
        if s is not None or e is not None:
            col = table.column(contract.DATETIME)
            t = np.asarray(pc.fill_null(col.cast(pa.int64()), np.iinfo(np.int64).min).to_numpy())
            valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            keep &= valid
            if s is not None:
                keep &= t >= _us(s)
            if e is not None:
                keep &= t <= _us(e)
        if self.min_valid_fraction is not None:
            keep &= table.column(contract.VALID_FRACTION).to_numpy() >= self.min_valid_fraction
        for col_name, op, val in parse_where(self.where) if self.where else []:
            keep &= _OPS[op](table.column(col_name).to_numpy(), val)
        return keep

    def range_positions(self, ids_sorted: np.ndarray, res: int) -> np.ndarray | None:
        """Positions in sorted ``ids_sorted`` passing a filter made only of region/cells.

        Each region or cell is one contiguous id range, found by binary search, so the cost
        does not grow with the number of rows. ``None`` when the filter has other parts.
        """
        if self.empty or any(getattr(self, f) is not None for f in _NON_RANGE_FIELDS):
            return None
        ranges = [_range(c, res) for c in self.cells] if self.cells is not None else None
        if self.region is not None:
            lo, hi = _range(self.region, res)
            ranges = [(max(a, lo), min(b, hi)) for a, b in ranges] if ranges is not None else [(lo, hi)]
        spans = []
        for lo, hi in sorted(set(ranges or [])):
            if lo > hi:
                continue
            a = int(np.searchsorted(ids_sorted, np.uint64(lo), side="left"))
            b = int(np.searchsorted(ids_sorted, np.uint64(hi), side="right"))
            spans.append(np.arange(a, b, dtype=np.int64))
        if len(spans) == 1:
            return spans[0]  # one region: one sorted run of positions
        return np.unique(np.concatenate(spans)) if spans else np.zeros(0, dtype=np.int64)

    def selector(self, ids: np.ndarray, res: int) -> Any:
        """A FAISS id selector for candidate ``ids`` (one range when the filter is a region)."""
        if self.region_only:
            lo, hi = _range(self.region, res)
            return faiss.IDSelectorRange(lo, hi + 1)
        ids64 = np.ascontiguousarray(ids, dtype=np.int64)
        return _BatchSelector(ids64)


class _BatchSelector(faiss.IDSelectorBatch):
    """``IDSelectorBatch`` that keeps its id array alive while FAISS uses it."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids
        super().__init__(len(ids), faiss.swig_ptr(ids))


def _us(dt: datetime) -> int:
    return int(round(dt.timestamp() * 1_000_000))


@functools.lru_cache(maxsize=4096)
def _range(cell: str | int, res: int) -> tuple[int, int]:
    """Inclusive id range of the descendants of ``cell`` at ``res`` (memoised: queries repeat)."""
    c = h3grid.parse_cell(cell)
    r = h3grid.cell_resolution(c)
    if r > res:
        raise QueryError(
            f"region cell {h3grid.cell_to_str(c)} has resolution {r}, finer than the database "
            f"resolution {res}; give a cell at resolution {res} or coarser"
        )
    return h3grid.descendant_range(c, res)


def _cells_mask(ids: np.ndarray, cells: Sequence[str | int], res: int) -> np.ndarray:
    exact = []
    keep = np.zeros(len(ids), dtype=bool)
    for c in cells:
        lo, hi = _range(c, res)
        if lo == hi:
            exact.append(lo)
        else:
            keep |= (ids >= np.uint64(lo)) & (ids <= np.uint64(hi))
    if exact:
        keep |= np.isin(ids, np.array(exact, dtype=np.uint64))
    return keep


def polygon_rings(polygon: dict[str, Any] | Sequence[tuple[float, float]]) -> list[list[np.ndarray]]:
    """Polygons as lists of rings, each an (n, 2) array of ``(lon, lat)``.

    Raises:
        QueryError: not a Polygon/MultiPolygon or vertex list, too few or bad vertices.
    """
    try:
        if isinstance(polygon, dict):
            kind, coords = polygon.get("type"), polygon.get("coordinates") or []
            if kind == "Polygon":
                polys = [coords]
            elif kind == "MultiPolygon":
                polys = list(coords)
            else:
                raise ValueError(f"geometry type {kind!r} is not Polygon or MultiPolygon")
            out = [[np.asarray(r, dtype=np.float64)[:, :2] for r in poly] for poly in polys]
        else:
            latlon = np.asarray(list(polygon), dtype=np.float64).reshape(-1, 2)
            out = [[latlon[:, ::-1]]]
        for poly in out:
            for ring in poly:
                if len(ring) < 3 or not np.isfinite(ring).all():
                    raise ValueError("a ring needs at least 3 finite vertices")
                if (np.abs(ring[:, 1]) > 90).any() or (np.abs(ring[:, 0]) > 360).any():
                    raise ValueError("vertices out of range (GeoJSON order is lon, lat)")
    except (ValueError, TypeError, IndexError) as exc:
        raise QueryError(
            f"cannot use polygon {str(polygon)[:80]}: {exc}; "
            "give a GeoJSON Polygon/MultiPolygon or (lat, lon) vertices"
        ) from exc
    return out


def points_in_polygon(
    lat: np.ndarray, lon: np.ndarray, polygon: dict[str, Any] | Sequence[tuple[float, float]]
) -> np.ndarray:
    """Whether each point lies inside the polygon (shapely; holes excluded, edges outside)."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    any_in = np.zeros(len(lat), dtype=bool)
    for shell, *holes in polygon_rings(polygon):
        any_in |= shapely.contains_xy(shapely.Polygon(shell, holes), lon, lat)
    return any_in

"""Seed labels for kNN labelling: read CSV or GeoJSON, map them onto database cells.

Accepted inputs:

* CSV with columns ``lat,lon,label`` or ``h3,label`` (extra columns are ignored);
* GeoJSON FeatureCollection of Point features with a ``label`` property.

A point maps to the cell containing it at the database resolution; an H3 seed finer than
the database maps to its parent. Seeds whose cell is not in the database are dropped and
counted; several seeds in one cell keep the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from embedder import contract, h3grid
from embedder.errors import EarthvecError, InputNotFoundError, SeedError

LABEL = contract.LABEL
"""Column holding a class name (seeds and predictions)."""


@dataclass
class Seeds:
    """Seeds mapped onto database cells.

    Attributes:
        cells: uint64 cells at the database resolution (unique, all in the database).
        labels: class name per cell.
        n_read: seeds in the file.
        n_outside: seeds dropped because their cell is not in the database.
        n_duplicate: seeds dropped because an earlier seed had the same cell.
        path: the seed file.
    """

    cells: np.ndarray
    labels: np.ndarray
    n_read: int
    n_outside: int
    n_duplicate: int
    path: Path

    @property
    def classes(self) -> list[str]:
        """Sorted class names."""
        return sorted(set(self.labels.tolist()))

    def class_counts(self) -> dict[str, int]:
        """Number of seeds per class."""
        names, counts = np.unique(self.labels, return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}

    def table(self) -> pa.Table:
        """The seeds as a table (h3, lat, lon, label), as stored in ``DB/labels``."""
        lat, lon = h3grid.cell_centres(self.cells)
        return pa.table(
            {
                contract.H3: pa.array(self.cells, type=pa.uint64()),
                contract.LAT: lat,
                contract.LON: lon,
                LABEL: pa.array(self.labels.astype(str).tolist(), type=pa.string()),
            },
            schema=contract.seeds_schema(),
        )


def read_seeds(path: str | Path) -> pd.DataFrame:
    """Read a seed file into a frame with ``label`` and either ``h3`` or ``lat``/``lon``.

    Raises:
        InputNotFoundError: the file does not exist.
        SeedError: unreadable file, missing columns, bad coordinates or empty labels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"seed file {path} does not exist; give a CSV or GeoJSON file")
    if path.suffix.lower() in (".geojson", ".json"):
        df = _read_geojson(path)
    else:
        df = _read_csv(path)
        df.columns = [str(c).strip().lower() for c in df.columns]
    if LABEL not in df.columns or not ({"lat", "lon"} <= set(df.columns) or "h3" in df.columns):
        raise SeedError(
            f"{path} has columns {list(df.columns)}; seeds need 'lat,lon,label' or 'h3,label' "
            "(or GeoJSON points with a 'label' property)"
        )
    bad = df[LABEL].isna() | (df[LABEL].astype(str).str.strip() == "")
    if bad.any():
        raise SeedError(f"{path}: row {int(np.flatnonzero(bad)[0]) + 1} has an empty label; label every seed")
    df[LABEL] = df[LABEL].astype(str).str.strip()
    return df


CSV_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
"""Seed CSVs are read as UTF-8 (with or without a byte-order mark), else as Windows-1252
(what spreadsheet programs in Western Europe write), else as Latin-1."""


def _read_csv(path: Path) -> pd.DataFrame:
    head = path.read_bytes()[:4096]
    if b"\0" in head:
        raise SeedError(
            f"{path} is a binary file, not a CSV; give a CSV with lat,lon,label or h3,label columns "
            "(or GeoJSON points)"
        )
    for enc in CSV_ENCODINGS:
        try:
            return pd.read_csv(path, dtype={"h3": str, LABEL: str}, encoding=enc)
        except UnicodeDecodeError:
            continue
        except (ValueError, OSError) as exc:
            raise SeedError(f"cannot read seed file {path} as CSV: {' '.join(str(exc).split())}") from exc
    raise SeedError(f"cannot read seed file {path} as text; save it as UTF-8 CSV")


def _read_geojson(path: Path) -> pd.DataFrame:
    try:
        doc = json.loads(path.read_bytes())  # bytes: UTF-8/16/32, with or without a BOM
    except (ValueError, OSError) as exc:
        raise SeedError(f"cannot read seed file {path} as GeoJSON: {exc}") from exc
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(feats, list):
        raise SeedError(f"{path} is not a GeoJSON FeatureCollection; give Point features with a 'label'")
    rows = []
    for i, f in enumerate(feats):
        geom = (f.get("geometry") if isinstance(f, dict) else None) or {}
        if geom.get("type") != "Point":
            raise SeedError(f"{path}: feature {i} is a {geom.get('type')}, not a Point; seeds must be points")
        xy = geom.get("coordinates")
        if not isinstance(xy, list | tuple) or len(xy) < 2:
            raise SeedError(f"{path}: feature {i} has coordinates {xy!r}; a Point needs [lon, lat]")
        props = f.get("properties") if isinstance(f.get("properties"), dict) else {}
        rows.append({"lat": xy[1], "lon": xy[0], LABEL: props.get(LABEL)})
    return pd.DataFrame(rows, columns=["lat", "lon", LABEL])


def seed_cells(df: pd.DataFrame, res: int, where: str = "seeds") -> np.ndarray:
    """Cells (uint64, at ``res``) of the seeds in ``df``.

    Raises:
        SeedError: a bad H3 id, a cell coarser than ``res``, or coordinates out of range.
    """
    if "h3" in df.columns and not {"lat", "lon"} <= set(df.columns) and df["h3"].isna().any():
        raise SeedError(
            f"{where}: row {int(np.flatnonzero(df['h3'].isna().to_numpy())[0]) + 1} has no h3 cell; "
            "give a cell id in every row (or lat,lon columns)"
        )
    if "h3" in df.columns and df["h3"].notna().all():
        cells = []
        for i, v in enumerate(df["h3"]):
            try:
                c = h3grid.parse_cell(str(v))
            except EarthvecError as exc:
                raise SeedError(f"{where}: row {i + 1}: {exc}") from exc
            if h3grid.cell_resolution(c) < res:
                raise SeedError(
                    f"{where}: row {i + 1}: cell {v} is coarser than the database "
                    f"resolution {res}; "
                    f"give cells at resolution {res} or points"
                )
            cells.append(c)
        return h3grid.cell_parents(np.array(cells, dtype=np.uint64), res)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(dtype=np.float64)
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(dtype=np.float64)
    for i, (a, b) in enumerate(zip(lat, lon, strict=True)):
        try:
            h3grid.check_latlon(a, b)
        except EarthvecError as exc:
            raise SeedError(f"{where}: row {i + 1}: {exc}") from exc
    return h3grid.latlon_to_cells(lat, lon, res)


def map_seeds(df: pd.DataFrame, indexed: np.ndarray, res: int, path: str | Path = "seeds") -> Seeds:
    """Map seeds onto the database cells ``indexed`` (sorted uint64).

    Raises:
        SeedError: no seed inside the database, or fewer than two classes inside it.
    """
    cells = seed_cells(df, res, str(path))
    labels = df[LABEL].to_numpy(dtype=object)
    pos = np.searchsorted(indexed, cells)
    inside = np.zeros(len(cells), dtype=bool)
    if len(indexed):
        inside = (pos < len(indexed)) & (indexed[np.minimum(pos, len(indexed) - 1)] == cells)
    if not inside.any():
        raise SeedError(
            f"none of the {len(cells)} seeds in {path} falls in a cell of the database "
            f"(resolution {res}); give seeds inside the area the database covers"
        )
    cin, lin = cells[inside], labels[inside]
    _, first = np.unique(cin, return_index=True)
    first.sort()
    seeds = Seeds(
        cells=cin[first],
        labels=np.asarray(lin[first], dtype=str),
        n_read=len(cells),
        n_outside=int((~inside).sum()),
        n_duplicate=int(len(cin) - len(first)),
        path=Path(path),
    )
    if len(seeds.classes) < 2:
        raise SeedError(
            f"the {len(seeds.cells)} seeds of {path} inside the database all have the label "
            f"{seeds.classes[0]!r}; kNN labelling needs at least two classes: "
            "add seeds of another class"
        )
    return seeds

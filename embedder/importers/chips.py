"""Chip products (Major TOM, Clay, Earth Index): one vector per chip, mapped to its centre's cell.

The product modules read their Parquet files into a :class:`ChipImport`; :func:`pool_chips`
maps each chip to the H3 cell containing its centre and, when several chips of one time
land in one cell (overlapping fragments, or a coarse ``--res``), averages their unit vectors
and renormalises (``count`` says how many).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from embedder import h3grid
from embedder.errors import SchemaError
from embedder.importers.pool import CellAccumulator
from embedder.importers.rows import CellRows

PARQUET_SUFFIXES = (".parquet", ".gpq", ".geoparquet")


@dataclass
class ChipImport:
    """Chips read from a product's files (rows in file order).

    Attributes:
        lat, lon: chip centres (degrees).
        vectors: (N, D) float32 vectors as stored (any length; normalised when pooled).
        datetimes: per chip (``None`` when the product gives none).
        sources: per chip, the file and the product's own id of the chip.
        sensors, modalities: per chip.
        version: the product version.
        files: the files read.
        chip_size_m: median chip side in metres (from footprints), for the default resolution.
    """

    lat: np.ndarray
    lon: np.ndarray
    vectors: np.ndarray
    datetimes: list[datetime | None]
    sources: list[list[str]]
    sensors: list[list[str]]
    modalities: list[list[str]]
    version: str
    files: list[str] = field(default_factory=list)
    chip_size_m: float | None = None


def read_columns(
    path: str, needed: tuple[str, ...], product: str, optional: tuple[str, ...] = ()
) -> pa.Table:
    """The ``needed`` (and present ``optional``) columns of a Parquet file.

    Raises:
        SchemaError: naming the file and the missing columns of the product's layout.
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise SchemaError(f"{path} is not a readable Parquet file ({exc})") from exc
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise SchemaError(
            f"{path} lacks column(s) {missing} of the {product} layout (it has {schema.names}); "
            f"is it a {product} file?"
        )
    return pq.read_table(path, columns=[*needed, *(c for c in optional if c in schema.names)])


def vectors_of(column: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """A list / fixed-size-list column of floats as an ``(N, D)`` float32 matrix.

    Raises:
        SchemaError: for ragged lists, nulls or non-numeric values.
    """
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (
        pa.types.is_list(col.type)
        or pa.types.is_large_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
    ):
        raise SchemaError(f"{where}: the embedding column is {col.type}, not a list of floats")
    if col.null_count:
        raise SchemaError(f"{where}: {col.null_count} chip(s) have no embedding; drop them first")
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    else:
        lengths = np.asarray(col.value_lengths().to_numpy(zero_copy_only=False))
        if len(lengths) and (lengths != lengths[0]).any():
            raise SchemaError(
                f"{where}: embeddings have lengths {sorted(set(lengths.tolist()))[:5]}; one length only"
            )
        dim = int(lengths[0]) if len(lengths) else 0
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    vecs = flat.reshape(len(col), dim)
    if not np.isfinite(vecs).all():
        raise SchemaError(f"{where}: embeddings hold NaN or infinite values")
    return vecs


def footprint_centres(wkb: pa.ChunkedArray | pa.Array, where: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Centres (lat, lon) of WKB footprints in lon/lat degrees, and their median side in metres.

    Raises:
        SchemaError: when a geometry cannot be read.
    """
    col = wkb.combine_chunks() if isinstance(wkb, pa.ChunkedArray) else wkb
    geoms = shapely.from_wkb(
        np.asarray(col.to_numpy(zero_copy_only=False), dtype=object), on_invalid="ignore"
    )
    if geoms is None or shapely.is_missing(geoms).any():
        raise SchemaError(f"{where}: some geometries are not readable WKB")
    centre = shapely.centroid(geoms)
    lon, lat = shapely.get_x(centre), shapely.get_y(centre)
    b = shapely.bounds(geoms)
    side_deg = np.sqrt(np.abs((b[:, 2] - b[:, 0]) * np.cos(np.radians(lat))) * np.abs(b[:, 3] - b[:, 1]))
    size = float(np.median(side_deg)) * 111_320.0 if len(side_deg) else None
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64), size or 0.0


def concat(parts: list[ChipImport], version: str) -> ChipImport:
    """One :class:`ChipImport` of several files' chips."""
    dims = {p.vectors.shape[1] for p in parts}
    if len(dims) > 1:
        raise SchemaError(
            f"the files hold embeddings of lengths {sorted(dims)}; they come from different models: "
            "import each into its own database"
        )
    sizes = [p.chip_size_m for p in parts if p.chip_size_m]
    return ChipImport(
        lat=np.concatenate([p.lat for p in parts]),
        lon=np.concatenate([p.lon for p in parts]),
        vectors=np.concatenate([p.vectors for p in parts]),
        datetimes=[d for p in parts for d in p.datetimes],
        sources=[s for p in parts for s in p.sources],
        sensors=[s for p in parts for s in p.sensors],
        modalities=[m for p in parts for m in p.modalities],
        version=version,
        files=[f for p in parts for f in p.files],
        chip_size_m=float(np.median(sizes)) if sizes else None,
    )


def pool_chips(chips: ChipImport, res: int, spread: bool = False) -> CellRows:
    """Map chips to the cells of their centres at ``res``; average chips sharing a cell and time."""
    for i, (a, b) in enumerate(zip(chips.lat.tolist(), chips.lon.tolist(), strict=True)):
        try:
            h3grid.check_latlon(a, b)
        except ValueError as exc:
            raise SchemaError(f"chip {i} ({chips.sources[i]}): {exc}") from exc
    cells = h3grid.latlon_to_cells(chips.lat, chips.lon, res)
    norms = np.linalg.norm(chips.vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        bad = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise SchemaError(f"chip {bad} ({chips.sources[bad]}) has an all-zero embedding; drop it first")
    unit = chips.vectors / norms
    groups: dict[datetime | None, list[int]] = {}
    for i, d in enumerate(chips.datetimes):
        groups.setdefault(d, []).append(i)
    parts: list[CellRows] = []
    for when, idx_list in groups.items():
        idx = np.array(idx_list)
        acc = CellAccumulator(unit.shape[1], spread)
        acc.add(cells[idx], unit[idx], 0)
        pooled = acc.result(cell_fraction=False)
        order = idx[np.argsort(cells[idx], kind="stable")]
        bounds = np.searchsorted(cells[order], pooled.cells, side="left")
        ends = np.searchsorted(cells[order], pooled.cells, side="right")
        members = [order[a:b].tolist() for a, b in zip(bounds.tolist(), ends.tolist(), strict=True)]
        parts.append(
            CellRows(
                cells=pooled.cells,
                datetimes=[when] * len(pooled.cells),
                vectors=pooled.vectors,
                valid_fraction=pooled.valid_fraction,
                count=pooled.count,
                spread=pooled.spread,
                sources=[sorted({s for k in ks for s in chips.sources[k]}) for ks in members],
                sensors=[sorted({s for k in ks for s in chips.sensors[k]}) for ks in members],
                modalities=[sorted({m for k in ks for m in chips.modalities[k]}) for ks in members],
            )
        )
    return CellRows.concat(parts)


def file_label(path: str) -> str:
    """How a source file is named in the ``source`` column (its path as given)."""
    return str(Path(path)) if not path.startswith(("http", "s3:", "gs:", "/vsi")) else path

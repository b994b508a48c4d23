"""Small contract databases for the explorer tests, made from real EuroSAT-MS chips.

Pixels come from ``data/eurosat_ms`` (real Sentinel-2 chips); vectors are the "stats"
baseline embedder's; cells are the H3 cells of the chip centres. ``make_change_db`` adds a
second, later date to some cells whose vector comes from another real chip (a constructed
"the land cover changed" scenario: EuroSAT has no time series).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio

from embedder import contract
from embedder.baseline import ChannelStats
from embedder.batch import ChipBatch, ModalityBatch, valid_fraction
from embedder.h3grid import cell_centres, cell_parents, cell_to_str, cell_wkb, latlon_to_cells
from embedder.sensors import get_sensor

EUROSAT = Path(__file__).resolve().parents[2] / "data" / "eurosat_ms"
SENSOR = "sentinel2-l1c-eurosat"
RES = 8
PARTITION_RES = 3


def manifest(root: Path = EUROSAT) -> list[dict[str, str]]:
    """Rows of ``manifest.csv``."""
    with (root / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def read_chips(paths: list[Path]) -> ChipBatch:
    """EuroSAT files as one optical batch in physical units."""
    sensor = get_sensor(SENSOR)
    data = []
    for p in paths:
        with rasterio.open(p) as src:
            data.append(sensor.to_physical(src.read()))
    arr = np.stack(data).astype(np.float32)
    wl = np.array([b.wavelength_nm or np.nan for b in sensor.bands], dtype=np.float32)
    mb = ModalityBatch(SENSOR, sensor.band_names, wl, arr, np.ones(len(paths), dtype=bool))
    return ChipBatch({"optical": mb})


def write_db(
    db: Path,
    paths: list[Path],
    lat: np.ndarray,
    lon: np.ndarray,
    dates: Sequence[datetime | None],
) -> None:
    """Embed chips with the stats model and write them as one contract DB."""
    model = ChannelStats()
    batch = read_chips(paths)
    emb = model.embed(batch)
    cells = latlon_to_cells(lat, lon, RES)
    clat, clon = cell_centres(cells)
    meta = contract.DatasetMeta(
        model_name=model.name,
        model_version=model.version,
        dim=model.dim,
        h3_resolution=RES,
        partition_resolution=PARTITION_RES,
        model_config=model.config(),
        sensors={SENSOR: get_sensor(SENSOR).summary()},
    )
    parents = cell_parents(cells, PARTITION_RES)
    for parent in np.unique(parents):
        sel = np.flatnonzero(parents == parent)
        table = contract.make_table(
            h3=cells[sel],
            lat=clat[sel],
            lon=clon[sel],
            geometry=[cell_wkb(int(c)) for c in cells[sel]],
            datetime_=[dates[int(i)] for i in sel],
            source=[[str(paths[i])] for i in sel],
            modalities=[["optical"]] * len(sel),
            sensors=[[SENSOR]] * len(sel),
            valid_fraction=valid_fraction(batch.take(sel)),
            embedding=emb[sel],
            meta=meta,
        )
        contract.write_table_atomic(table, contract.shard_path(db, cell_to_str(int(parent)), "test"))


def make_eurosat_db(db: Path, root: Path = EUROSAT, limit: int | None = None) -> list[dict[str, str]]:
    """A DB of the EuroSAT chips (one undated row per chip); returns the manifest rows used."""
    rows = manifest(root)[:limit] if limit else manifest(root)
    paths = [root / r["path"] for r in rows]
    lat = np.array([float(r["center_lat"]) for r in rows])
    lon = np.array([float(r["center_lon"]) for r in rows])
    write_db(db, paths, lat, lon, [None] * len(rows))
    return rows


def make_change_db(db: Path, root: Path = EUROSAT, n: int = 6) -> dict[str, object]:
    """A DB whose first ``n`` Forest cells have a 2018 and a 2021 row.

    In 2018 each of those cells holds its own Forest chip; in 2021 cells 0..n/2-1 hold
    another Forest chip (little change) and the others an Industrial chip (change).
    Returns the cells and which of them changed.
    """
    rows = manifest(root)
    forest = [r for r in rows if r["label"] == "Forest"]
    industrial = [r for r in rows if r["label"] == "Industrial"]
    base = forest[:n]
    later_same = forest[n : n + n // 2]
    later_changed = industrial[: n - n // 2]
    later = later_same + later_changed
    paths = [root / r["path"] for r in base + later]
    lat = np.array([float(r["center_lat"]) for r in base] * 2)
    lon = np.array([float(r["center_lon"]) for r in base] * 2)
    d0 = datetime(2018, 6, 1, tzinfo=timezone.utc)
    d1 = datetime(2021, 6, 1, tzinfo=timezone.utc)
    write_db(db, paths, lat, lon, [d0] * n + [d1] * n)
    cells = latlon_to_cells(lat[:n], lon[:n], RES)
    return {"cells": cells, "changed": np.array([False] * (n // 2) + [True] * (n - n // 2))}

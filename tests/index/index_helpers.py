"""Helpers for the index tests: write small contract databases from real EuroSAT vectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from embedder import contract, h3grid

REPO = Path(__file__).resolve().parents[2]
EUROSAT = REPO / "data" / "eurosat_ms"
RES = 8
PARTITION_RES = 3


def eurosat_features(paths: list[Path]) -> np.ndarray:
    """Stats-model vectors of EuroSAT files (real pixels)."""
    import rasterio

    from embedder.batch import ChipBatch, ModalityBatch
    from embedder.registry import get_embedder
    from embedder.sensors import get_sensor

    sensor = get_sensor("sentinel2-l1c-eurosat")
    chips = []
    for p in paths:
        with rasterio.open(p) as src:
            chips.append(sensor.to_physical(src.read()))
    data = np.stack(chips)
    wl = np.array([b.wavelength_nm or np.nan for b in sensor.bands], dtype=np.float64)
    batch = ChipBatch(
        {"optical": ModalityBatch(sensor.name, sensor.band_names, wl, data, np.ones(len(data), bool))}
    )
    return get_embedder("stats").embed(batch)


def write_db(
    db: Path,
    cells: np.ndarray,
    vectors: np.ndarray,
    sources: list[str],
    meta: contract.DatasetMeta,
    dates: Sequence[datetime | None] | None = None,
    key: str = "0",
    valid: np.ndarray | None = None,
) -> None:
    """Write contract Parquet, one file per partition."""
    cells = np.asarray(cells, dtype=np.uint64)
    parents = h3grid.cell_parents(cells, meta.partition_resolution)
    dates = dates or [None] * len(cells)
    lat, lon = h3grid.cell_centres(cells)
    for p in np.unique(parents):
        m = np.flatnonzero(parents == p)
        table = contract.make_table(
            h3=cells[m],
            lat=lat[m],
            lon=lon[m],
            geometry=[h3grid.cell_wkb(int(c)) for c in cells[m]],
            datetime_=[dates[int(i)] for i in m],
            source=[[sources[i]] for i in m],
            modalities=[["optical"]] * len(m),
            sensors=[["sentinel2-l1c-eurosat"]] * len(m),
            valid_fraction=(np.ones(len(cells)) if valid is None else valid)[m].astype(np.float32),
            embedding=vectors[m],
            meta=meta,
        )
        contract.write_table_atomic(table, contract.shard_path(db, h3grid.cell_to_str(int(p)), key))


def table_of(db: Path) -> tuple[np.ndarray, np.ndarray, list[datetime | None]]:
    """All rows of a database: cells (uint64), vectors (N, D), datetimes."""
    t = contract.read_table(db)
    cells = np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64)
    return cells, contract.embeddings_matrix(t), t.column(contract.DATETIME).to_pylist()


def stats_meta(
    res: int = RES, partition_res: int = PARTITION_RES, name: str = "stats"
) -> contract.DatasetMeta:
    """Dataset metadata of the stats embedder."""
    from embedder.registry import get_embedder

    emb = get_embedder("stats")
    return contract.DatasetMeta(
        model_name=name,
        model_version=emb.version,
        dim=emb.dim,
        h3_resolution=res,
        partition_resolution=partition_res,
        model_config=emb.config(),
    )


def oracle_top_k(
    vectors: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int, exclude: set[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product in float64 (the numpy oracle)."""
    keep = np.array([int(c) not in (exclude or set()) for c in ids])
    v, i = vectors[keep].astype(np.float64), ids[keep]
    s = v @ np.asarray(q, dtype=np.float64)
    order = np.argsort(-s, kind="stable")[:k]
    return i[order], s[order]

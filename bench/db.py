"""Write the benchmark vectors as an earthvec database (contract Parquet) for the API rows."""

from __future__ import annotations

import csv
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bench.data import CELL_RES, TiledSet
from embedder import contract, h3grid
from embedder.h3grid import cells_wkb

PARTITION_RES = 3
MODEL_NAME = "bench-patch-rp128"
MODEL_VERSION = "1"
DATE = datetime(2020, 1, 1, tzinfo=timezone.utc)


def bench_meta() -> contract.DatasetMeta:
    """Metadata of the benchmark database (a pseudo-model: projected patch spectra)."""
    return contract.DatasetMeta(
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        dim=128,
        h3_resolution=CELL_RES,
        partition_resolution=PARTITION_RES,
        model_config={"what": "EuroSAT 4x4 patch spectra, random projection to 128-d, tiled"},
    )


def write_rows(db: Path, ts: TiledSet, cells: np.ndarray, start: int, stop: int, key: str) -> None:
    """Write base rows ``[start, stop)`` into ``db``: one Parquet file per partition.

    Vectors are regenerated block by block and appended to one open writer per partition,
    so memory stays at one block; files appear atomically (temporary name, then rename).
    """
    import pyarrow.parquet as pq

    meta = bench_meta()
    schema = contract.arrow_schema(meta.dim, meta)
    writers: dict[int, tuple[pq.ParquetWriter, Path, Path]] = {}
    try:
        for b in range(ts.n_blocks()):
            s, e = ts.block_rows(b)
            if e <= start or s >= stop:
                continue
            s, e = max(s, start), min(e, stop)
            x = ts.vectors(s, e)
            c = cells[s:e]
            parents = h3grid.cell_parents(c, PARTITION_RES)
            lat, lon = h3grid.cell_centres(c)
            wkb = cells_wkb(c)
            src_chip = ts.real.chip[ts.source_rows(s, e)]
            for p in np.unique(parents):
                m = np.flatnonzero(parents == p)
                table = contract.make_table(
                    h3=c[m],
                    lat=lat[m],
                    lon=lon[m],
                    geometry=[wkb[i] for i in m],
                    datetime_=[DATE] * len(m),
                    source=[[ts.real.chips[j]] for j in src_chip[m]],
                    modalities=[["optical"]] * len(m),
                    sensors=[["sentinel2-l1c-eurosat"]] * len(m),
                    valid_fraction=np.ones(len(m), dtype=np.float32),
                    embedding=x[m],
                    meta=meta,
                )
                if int(p) not in writers:
                    final = contract.shard_path(db, h3grid.cell_to_str(int(p)), key)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    tmp = final.with_name(f".{final.name}.tmp")
                    writers[int(p)] = (pq.ParquetWriter(tmp, schema, compression="zstd"), tmp, final)
                writers[int(p)][0].write_table(table)
    finally:
        for w, _tmp, _final in writers.values():
            w.close()
    for _w, tmp, final in writers.values():
        os.replace(tmp, final)


def link_rows(src_db: Path, dst_db: Path) -> None:
    """Hard-link (or copy) every embeddings file of ``src_db`` into ``dst_db``."""
    import shutil

    for f in contract.embedding_files(src_db):
        rel = f.relative_to(src_db)
        out = dst_db / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            continue
        try:
            os.link(f, out)
        except OSError:
            shutil.copy2(f, out)


def write_seeds(path: Path, ts: TiledSet, cells: np.ndarray, n: int, seed: int = 7) -> None:
    """A seed CSV (h3, label) of ``n`` random rows labelled with their real chip's class."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(ts.n, n, replace=False))
    labels = ts.labels()[rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["h3", "label"])
        for r, lab in zip(rows, labels, strict=True):
            w.writerow([h3grid.cell_to_str(int(cells[r])), lab])

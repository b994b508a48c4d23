"""The front door of the importers: read a product's files, pool them into cells, write the rows."""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h3.api.basic_int as h3i

from embedder import contract
from embedder.errors import SourceError
from embedder.importers.chips import pool_chips
from embedder.importers.pool import pixel_area_m2, pool_pixels
from embedder.importers.products import Product, get_product
from embedder.importers.rows import CellRows, ImportReport, check_target, import_meta, save_report, write_rows
from embedder.storage import Transaction

log = logging.getLogger(__name__)

MODULES = {
    "satellite-embedding": "embedder.importers.satellite_embedding",
    "tessera": "embedder.importers.tessera",
    "majortom": "embedder.importers.majortom",
    "clay": "embedder.importers.clay",
    "earthindex": "embedder.importers.earthindex",
}
DEFAULT_PIXEL_RES = 8
"""Pixel products pool into res-8 cells (0.74 km2, ~7,400 pixels of 10 m) unless ``--res`` says otherwise."""
MIN_PIXELS_PER_CELL = 10


def _check_res(res: int) -> int:
    if not 0 <= int(res) <= 15:
        raise SourceError(f"--res {res} is not an H3 resolution; use 0..15")
    return int(res)


def _pixel_import(
    db: Path, prod: Product, module: Any, paths: list[str], opts: dict[str, Any]
) -> tuple[CellRows, contract.DatasetMeta, ImportReport, list[str]]:
    px = module.open_sources(paths, year=opts["year"], version=opts["version"])
    r = _check_res(DEFAULT_PIXEL_RES if opts["res"] is None else opts["res"])
    area = pixel_area_m2(px.sources[0])
    cell_m2 = h3i.average_hexagon_area(r, unit="m^2")
    if cell_m2 < MIN_PIXELS_PER_CELL * area:
        raise SourceError(
            f"--res {r} cells ({cell_m2:.0f} m2) hold fewer than {MIN_PIXELS_PER_CELL} pixels of "
            f"{math.sqrt(area):.0f} m; pool into a coarser --res"
        )
    meta = import_meta(prod, px.version, px.sources[0].dim, r, {
        "pooling": "mean of the valid pixels whose centre lies in the cell, renormalised",
        "dequantisation": prod.quantization.get("formula", "none"),
    })  # fmt: skip
    check_target(db, meta, opts["overwrite"])
    report = ImportReport(str(db), prod.name, meta.model, r, len(px.files))
    by_year: dict[int, list[Any]] = defaultdict(list)
    for s in px.sources:
        by_year[s.year].append(s)
    parts = []
    for y in sorted(by_year):
        srcs = by_year[y]
        pooled, stats = pool_pixels(srcs, r, spread=opts["spread"], progress=opts["progress"])
        for s in srcs:
            getattr(s, "close", lambda: None)()
        report.pixels_read += stats.pixels_read
        report.pixels_valid += stats.pixels_valid
        n = len(pooled.cells)
        parts.append(CellRows(
            cells=pooled.cells, datetimes=[datetime(y, 1, 1, tzinfo=timezone.utc)] * n,
            vectors=pooled.vectors, valid_fraction=pooled.valid_fraction, count=pooled.count,
            spread=pooled.spread, sources=[[srcs[i].path for i in ix] for ix in pooled.sources],
            sensors=[list(prod.sensors)] * n, modalities=[list(prod.modalities)] * n,
        ))  # fmt: skip
    report.years = sorted(by_year)
    return CellRows.concat([p for p in parts if len(p)]), meta, report, list(px.files)


def _chip_import(
    db: Path, prod: Product, module: Any, paths: list[str], opts: dict[str, Any]
) -> tuple[CellRows, contract.DatasetMeta, ImportReport, list[str]]:
    from embedder.chipplan import default_resolution

    chips = module.read_chips(paths, version=opts["version"])
    r = _check_res(opts["res"] if opts["res"] is not None else default_resolution(chips.chip_size_m or 640.0))
    meta = import_meta(prod, chips.version, chips.vectors.shape[1], r, {
        "pooling": "each chip at the cell of its centre; chips of one cell and time averaged (unit vectors), "
                   "renormalised",
        "chip_size_m": chips.chip_size_m,
    })  # fmt: skip
    check_target(db, meta, opts["overwrite"])
    report = ImportReport(str(db), prod.name, meta.model, r, len(chips.files))
    report.chips_read = len(chips.lat)
    report.years = sorted({d.year for d in chips.datetimes if d is not None})
    return pool_chips(chips, r, opts["spread"]), meta, report, list(chips.files)


def import_product(
    db: str | Path,
    product: str,
    paths: list[str],
    *,
    res: int | None = None,
    year: int | None = None,
    version: str | None = None,
    spread: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    wait: bool = True,
    command: str = "",
    finish: Callable[[Transaction], None] | None = None,
) -> ImportReport:
    """Import a product's files into the earthvec database ``db``.

    Args:
        db: database folder (created when missing).
        product: a name from :func:`~embedder.importers.products.product_names`.
        paths: the product's files, folders or globs.
        res: H3 resolution of the rows (pixel products: default :data:`DEFAULT_PIXEL_RES`;
            chip products: the resolution whose cell area matches the chip footprint).
        year: the year of annual pixel products when the paths do not say it.
        version: the product version when the files do not say it.
        spread: also store each row's spread (``1 - |mean unit pixel/chip vector|``).
        overwrite: replace the embeddings already in ``db`` (the old ones stay readable until
            the new generation is published).
        progress: show progress bars.
        wait: wait for another writer of ``db`` instead of failing.
        command: the command line recorded in the lock and the manifest.
        finish: run inside the transaction before it commits (e.g. build the index).

    Returns:
        An :class:`~embedder.importers.rows.ImportReport` (also written to ``DB/import.json``).

    Raises:
        EarthvecError: bad inputs, a product or version mix, or rows already imported from
            other files; nothing is half-written.
    """
    t0 = time.perf_counter()
    db = Path(db)
    prod = get_product(product)
    module = importlib.import_module(MODULES[prod.name])
    opts = {"res": res, "year": year, "version": version, "spread": spread, "overwrite": overwrite,
            "progress": progress}  # fmt: skip
    run = _pixel_import if prod.kind == "pixel" else _chip_import
    rows, meta, report, files = run(db, prod, module, paths, opts)
    info = {"product": prod.name, "version": meta.model_version, "years": report.years,
            "imported": contract.utcnow()}  # fmt: skip
    with Transaction(db, command=command or f"earthvec import --from {prod.name}", replace=overwrite,
                     wait=wait) as tx:  # fmt: skip
        write_rows(tx, rows, meta, info, set(files), report)
        if finish is not None:
            finish(tx)
        tx.commit()
    report.seconds = time.perf_counter() - t0
    save_report(db, report)
    log.info("imported %d rows of %s into %s", report.rows_written, meta.model, db)
    return report

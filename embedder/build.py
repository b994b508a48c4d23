"""Build a database: sources -> chips on H3 cells -> embeddings -> Parquet shards.

The unit of work is one shard: the rows whose cells share an H3 parent at the partition
resolution. Each shard is written atomically under a name that hashes everything that
determines its content (model version, resolution, rows and their source files), so a
re-run skips finished shards and an interrupted build resumes where it stopped.

Modalities of one place are aligned by H3 cell: a row holds, for one cell, one item of
its primary modality (optical when present) and, for each other modality, the item of
that cell closest in time.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embedder import contract
from embedder.batch import ChipBatch, ModalityBatch, valid_fraction
from embedder.chips import ChipSpec, choose_mode, default_resolution, item_geometry, plan_chips, read_chips
from embedder.contract import BuildReport
from embedder.errors import RasterError
from embedder.h3grid import cell_to_str, cell_wkb
from embedder.registry import DEFAULT_MODEL, Embedder, get_embedder, model_id
from embedder.sources import RasterItem, in_window, items_for_source, parse_datetime_window

log = logging.getLogger(__name__)

MODALITY_ORDER = ("optical", "sar", "elevation", "climate")
PARTITION_OFFSET = 7  # partition resolution = chip resolution - 7 (>= 0)


@dataclass
class SourceSpec:
    """One ``--source`` with its sensor preset (auto-detected when None) and band order.

    ``items`` holds raster items resolved elsewhere (a STAC search) instead of patterns.
    """

    patterns: list[str]
    sensor: str | None = None
    bands: list[str] | None = None
    items: list[RasterItem] | None = None


@dataclass
class Part:
    """One item's chip for one cell."""

    item: RasterItem
    spec: ChipSpec
    mode: str

    @property
    def modality(self) -> str:
        """The item's modality."""
        return self.item.sensor.modality


@dataclass
class Row:
    """One output row: a cell and the parts (one per modality) that feed it."""

    cell: int
    lat: float
    lon: float
    datetime: datetime | None
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """All files feeding the row."""
        return [p for part in self.parts.values() for p in part.item.paths]


def _items(specs: Sequence[SourceSpec]) -> list[RasterItem]:
    items: list[RasterItem] = []
    for s in specs:
        items.extend(s.items if s.items is not None else items_for_source(s.patterns, s.sensor, s.bands))
    return items


def plan_parts(items: list[RasterItem], res: int, mode: str) -> list[Part]:
    """Every (item, chip) pair the items yield at resolution ``res``."""
    parts: list[Part] = []
    for item in tqdm(items, desc="planning chips", unit="item", leave=False, disable=len(items) < 50):
        geom = item_geometry(item)
        m = choose_mode(geom, item, mode)
        parts.extend(Part(item, spec, m) for spec in plan_chips(item, geom, res, m))
    return parts


def _time_gap(a: datetime | None, b: datetime | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    return abs((a - b).total_seconds())


def align_rows(parts: list[Part]) -> list[Row]:
    """Group parts into rows by cell, pairing modalities by nearest acquisition time.

    Raises:
        RasterError: when two inputs of the primary modality map to the same cell and time.
    """
    by_cell: dict[int, dict[str, list[Part]]] = defaultdict(lambda: defaultdict(list))
    for p in parts:
        by_cell[p.spec.cell][p.modality].append(p)
    rows: list[Row] = []
    for cell in sorted(by_cell):
        mods = by_cell[cell]
        order = sorted(mods, key=lambda m: MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99)
        primary = order[0]
        seen: dict[datetime | None, Part] = {}
        for p in mods[primary]:
            when = p.item.datetime
            if when in seen:
                raise RasterError(
                    f"{seen[when].item.key!r} and {p.item.key!r} both map to H3 cell {cell_to_str(cell)} "
                    f"at time {when}; pass a finer --res so each chip gets its own cell"
                )
            seen[when] = p
            row = Row(cell, p.spec.lat, p.spec.lon, when, {primary: p})
            for other in order[1:]:
                gaps = [_time_gap(q.item.datetime, when) for q in mods[other]]
                row.parts[other] = mods[other][int(np.argmin(gaps))]
            rows.append(row)
    return rows


def _shard_key(model: str, res: int, rows: list[Row]) -> str:
    """Hash of everything that fixes a shard's content: model, resolution, rows, sensor facts."""
    from embedder.registry import config_hash

    sensors = sorted({p.item.sensor.name: p.item.sensor for r in rows for p in r.parts.values()}.items())
    facts = [s.summary() for _, s in sensors]
    body = [
        (
            r.cell,
            r.datetime.isoformat() if r.datetime else None,
            sorted(r.sources),
            [p.mode for p in r.parts.values()],
        )
        for r in rows
    ]
    return config_hash(model, res, facts, body)


def _read_rows(rows: list[Row]) -> dict[str, dict[int, np.ndarray]]:
    """Pixels per modality per row index, reading each item once."""
    jobs: dict[tuple[str, str], list[tuple[int, Part]]] = defaultdict(list)
    for i, row in enumerate(rows):
        for modality, part in row.parts.items():
            jobs[(modality, part.item.key)].append((i, part))

    def run(job: list[tuple[int, Part]]) -> tuple[list[int], np.ndarray]:
        first = job[0][1]
        data = read_chips(first.item, [p.spec for _, p in job], first.mode)
        return [i for i, _ in job], data

    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for (modality, _), (idx, data) in zip(jobs, pool.map(run, jobs.values()), strict=True):
            for k, i in enumerate(idx):
                out[modality][i] = data[k]
    return out


def _sensor_signature(row: Row) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (m, p.item.sensor.name + ":" + ",".join(p.item.sensor.band_names)) for m, p in row.parts.items()
        )
    )


def embed_rows(
    rows: list[Row],
    embedder: Embedder,
    batch_size: int = 256,
    pixels: dict[str, dict[int, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read and embed rows; returns (embeddings (N, D), valid_fraction (N,)) in row order.

    ``pixels`` (from ``_read_rows``) skips the reading, done elsewhere (a runner's read step).
    """
    pixels = _read_rows(rows) if pixels is None else pixels
    emb = np.zeros((len(rows), embedder.dim), dtype=np.float32)
    vf = np.zeros(len(rows), dtype=np.float32)
    groups: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[_sensor_signature(row)].append(i)
    for idx_all in groups.values():
        for start in range(0, len(idx_all), batch_size):
            idx = idx_all[start : start + batch_size]
            mods = {}
            for modality, part in rows[idx[0]].parts.items():
                sensor = part.item.sensor
                wl = np.array(
                    [b.wavelength_nm if b.wavelength_nm is not None else np.nan for b in sensor.bands]
                )
                data = np.stack([pixels[modality][i] for i in idx])
                mods[modality] = ModalityBatch(
                    sensor.name, sensor.band_names, wl, data, np.ones(len(idx), bool)
                )
            batch = ChipBatch(mods)
            vf[idx] = valid_fraction(batch)
            emb[idx] = embedder.embed(batch)
    return emb, vf


def _check_db_model(db: Path, meta: contract.DatasetMeta, overwrite: bool) -> None:
    if overwrite:
        for sub in (contract.EMBEDDINGS_DIR, contract.INDEX_DIR):
            shutil.rmtree(db / sub, ignore_errors=True)
        return
    contract.ensure_compatible(
        db, meta, "build into a new database folder, or pass --overwrite to replace the old embeddings"
    )


def build_db(
    db: str | Path,
    sources: Sequence[SourceSpec | str],
    *,
    sensor: str | None = None,
    bands: list[str] | None = None,
    res: int | None = None,
    model: str = DEFAULT_MODEL,
    mode: str = "auto",
    min_valid: float = 0.0,
    skip_empty: bool = False,
    partition_res: int | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    embedder: Embedder | None = None,
    datetime_window: str | None = None,
) -> BuildReport:
    """Build (or resume building) a database from raster sources.

    Args:
        db: database folder (created when missing).
        sources: ``SourceSpec`` objects, or plain paths/globs using ``sensor`` and ``bands``.
        sensor: sensor preset for plain sources (auto-detected when None).
        bands: band order overriding the preset (plain sources only).
        res: H3 resolution of chips; by default the one matching the first sensor's chip size.
        model: registered embedder name.
        mode: ``auto``, ``chip`` (each file is one chip) or ``scene`` (tile into chips).
        min_valid: drop chips whose valid fraction is at or below this (0 drops only empty chips).
        skip_empty: drop empty chips of chip-mode files instead of failing.
        partition_res: H3 resolution of the Parquet partitions (default ``res - 7``).
        batch_size: chips per embedder call.
        overwrite: replace embeddings already in ``db`` (needed to change model or resolution).
        embedder: an embedder instance to use instead of looking ``model`` up.
        datetime_window: ``START/END`` (ISO, ``..`` open): keep only inputs acquired in it.

    Returns:
        A :class:`BuildReport` (also written to ``DB/build.json``).

    Raises:
        EarthvecError: for bad sources, rasters or a model mismatch; nothing is half-written.
    """
    t0 = time.perf_counter()
    db = Path(db)
    specs = [s if isinstance(s, SourceSpec) else SourceSpec([s], sensor, bands) for s in sources]
    items = _items(specs)
    n_all = len(items)
    if datetime_window:  # --datetime: inputs of unknown time are left out too
        window = parse_datetime_window(datetime_window)
        items = [i for i in items if in_window(i.datetime, window)]
        if not items:
            raise RasterError(
                f"no input was acquired in --datetime {datetime_window} ({n_all} input(s) outside it or "
                "without a known time); widen the window"
            )
    res = default_resolution(items[0].sensor.chip_size_m) if res is None else int(res)
    if not 0 <= res <= 15:
        raise ValueError(f"--res {res} is not an H3 resolution; use 0..15")
    prt = max(0, res - PARTITION_OFFSET) if partition_res is None else int(partition_res)
    emb = embedder or get_embedder(model)
    sensors_used = {i.sensor.name: i.sensor.summary() for i in items}
    meta = contract.DatasetMeta(
        model_name=emb.name,
        model_version=emb.version,
        dim=emb.dim,
        h3_resolution=res,
        partition_resolution=prt,
        model_config=emb.config(),
        normalisation=emb.normalisation(),
        sensors=sensors_used,
    )
    _check_db_model(db, meta, overwrite)
    rows = align_rows(plan_parts(items, res, mode))
    report = BuildReport(str(db), model_id(emb), res, len(rows))
    report.items_outside_datetime = n_all - len(items)
    shards: dict[int, list[Row]] = defaultdict(list)
    import h3.api.basic_int as h3i

    for r in rows:
        shards[h3i.cell_to_parent(r.cell, prt)].append(r)
    report.shards_total = len(shards)
    bar = tqdm(total=len(rows), desc=f"embedding ({report.model})", unit="chip")
    try:
        for parent in sorted(shards):
            srows = shards[parent]
            path = contract.shard_path(db, cell_to_str(parent), _shard_key(report.model, res, srows))
            if path.exists():
                report.shards_skipped += 1
                bar.update(len(srows))
                continue
            vecs, vf = embed_rows(srows, emb, batch_size)
            keep = vf > min_valid
            empty = [r for r, v in zip(srows, vf, strict=True) if v <= 0.0]
            chip_mode_empty = [r for r in empty if any(p.mode == "chip" for p in r.parts.values())]
            if chip_mode_empty and not skip_empty:
                raise RasterError(
                    f"{chip_mode_empty[0].sources[0]!r} holds no valid pixel (all nodata); remove it "
                    f"from the sources or pass --skip-empty ({len(chip_mode_empty)} such chip(s) "
                    "in this shard)"
                )
            report.rows_dropped_empty += len(empty)
            report.rows_dropped_low_valid += int((~keep).sum()) - len(empty)
            kept = [r for r, k in zip(srows, keep, strict=True) if k]
            if kept:
                table = contract.make_table(
                    h3=np.array([r.cell for r in kept], dtype=np.uint64),
                    lat=np.array([r.lat for r in kept]),
                    lon=np.array([r.lon for r in kept]),
                    geometry=[cell_wkb(r.cell) for r in kept],
                    datetime_=[r.datetime for r in kept],
                    source=[r.sources for r in kept],
                    modalities=[sorted(r.parts, key=MODALITY_ORDER.index) for r in kept],
                    sensors=[sorted({p.item.sensor.name for p in r.parts.values()}) for r in kept],
                    valid_fraction=vf[keep],
                    embedding=vecs[keep],
                    meta=meta,
                )
                contract.write_table_atomic(table, path)
                report.rows_written += len(kept)
            report.shards_written += 1
            bar.update(len(srows))
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    contract.atomic_write_bytes(db / contract.BUILD_STATE, json.dumps(report.to_dict(), indent=2).encode())
    return report

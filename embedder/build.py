"""Build a database: sources -> chips on H3 cells -> embeddings -> Parquet shards.

The unit of work is one shard: the rows whose cells share an H3 parent at the partition
resolution (:class:`~embedder.raster_shard.RasterShard`, run by the local shard loop
:func:`~embedder.runner.run_local` or, with ``engine="ray"``, by the Ray runner
:func:`~embedder.ray_runner.run_ray` on the same specs). A build is one write transaction
(:class:`~embedder.storage.Transaction`): each shard is upserted into its partition by
``(h3, datetime)`` and journaled, and the new generation is published at the end. A
shard's key hashes everything that fixes its content (model version, resolution,
thresholds, rows, their source files and sensor facts), so a re-run skips finished
shards and an interrupted build resumes after checking the shards it finished.

Modalities of one place are aligned by H3 cell: a row holds, for one cell, one item of
its primary modality (optical when present) and, for each other modality, the item of
that cell closest in time.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h3.api.basic_int as h3i
from tqdm.auto import tqdm

from embedder import contract
from embedder.align import MODALITY_ORDER, Part, Row, SourceSpec, align_rows, plan_parts
from embedder.chipplan import default_resolution
from embedder.contract import BuildReport
from embedder.dates import in_window, parse_datetime_window
from embedder.errors import QueryError, RasterError
from embedder.h3grid import cell_to_str
from embedder.raster_shard import RasterShard, embed_rows, shard_key
from embedder.registry import DEFAULT_MODEL, Embedder, model_id
from embedder.runner import Runner, get_runner
from embedder.shard import EmbedderSpec, ShardResult, choose_batch_size
from embedder.sources import RasterItem, items_for_source
from embedder.storage import Transaction

if TYPE_CHECKING:
    from embedder.ray_runner import RayOptions

log = logging.getLogger(__name__)

__all__ = [
    "MODALITY_ORDER", "BuildReport", "Part", "Row", "SourceSpec", "build_db", "embed_rows", "write_report"
]  # fmt: skip
PARTITION_OFFSET = 7  # partition resolution = chip resolution - 7 (>= 0)


def _items(specs: Sequence[SourceSpec]) -> list[RasterItem]:
    items: list[RasterItem] = []
    for s in specs:
        items.extend(s.items if s.items is not None else items_for_source(s.patterns, s.sensor, s.bands))
    return items


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
    batch_size: int | None = None,
    device: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    embedder: Embedder | None = None,
    datetime_window: str | None = None,
    tx: Transaction | None = None,
    wait: bool = True,
    command: str = "",
    finish: Callable[[Transaction], object] | None = None,
    composite: str | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
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
        batch_size: chips per embedder call (default :func:`embedder.shard.choose_batch_size`).
        device: torch device of the model (``cpu``, ``cuda``); numpy models run on the CPU.
        workers: processes embedding shards (fork-safe numpy embedders only; ``engine="local"``).
        overwrite: replace the database's embeddings (needed to change model or resolution);
            the old ones stay published until the new generation is.
        embedder: an embedder instance to use instead of looking ``model`` up.
        datetime_window: ``START/END`` (ISO, ``..`` open): keep only inputs acquired in it.
        tx: an open :class:`~embedder.storage.Transaction` to write into (the caller commits);
            by default the build opens one and commits it.
        wait: wait for another writer of ``db`` (False: fail at once, ``--no-wait``).
        command: what runs (shown to other writers; recorded in the manifest).
        finish: called with the transaction after the shards, before the commit (the CLI
            builds the index of the new generation there, so both are published together).
        composite: ``"median"``: one row per cell, the per-pixel median of its clear observations.
        engine: who runs the shards: ``local`` (this process, or ``workers`` forks) or
            ``ray`` (a Ray Data cluster, :mod:`embedder.ray_runner`; same rows and files).
        ray: :class:`~embedder.ray_runner.RayOptions` of ``engine="ray"`` (address, actors, GPUs).

    Returns:
        A :class:`BuildReport` (also written to ``DB/build.json``).

    Raises:
        EarthvecError: for bad sources, rasters, a model mismatch or a busy database; the
            published database is unchanged.
    """
    t0 = time.perf_counter()
    runner = get_runner(engine, workers=workers, ray=ray)
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
        raise QueryError(f"--res {res} is not an H3 resolution; use 0..15 (e.g. --res 8 for ~0.7 km2 cells)")
    prt = max(0, res - PARTITION_OFFSET) if partition_res is None else int(partition_res)
    if not 0 <= prt <= res:
        raise QueryError(f"partition resolution {prt} must lie in 0..{res} (the chip resolution)")
    espec = EmbedderSpec(
        embedder.name if embedder else model, device, choose_batch_size(device, batch_size), instance=embedder
    )
    emb = espec.load()
    meta = contract.DatasetMeta(
        model_name=emb.name,
        model_version=emb.version,
        dim=emb.dim,
        h3_resolution=res,
        partition_resolution=prt,
        model_config=emb.config(),
        normalisation=emb.normalisation(),
        sensors={i.sensor.name: i.sensor.summary() for i in items},
    )
    rows = align_rows(plan_parts(items, res, mode), composite)
    report = BuildReport(str(db), model_id(emb), res, len(rows))
    report.items_outside_datetime = n_all - len(items)
    # planned first, so bad input found while planning writes nothing
    return run_build(
        db,
        lambda t: _run(t, meta, rows, espec, report, min_valid, skip_empty, runner),
        report,
        t0,
        tx=tx,
        command=command or "build_db",
        replace=overwrite,
        wait=wait,
        finish=finish,
    )


def run_build(
    db: Path,
    work: Callable[[Transaction], None],
    report: BuildReport,
    t0: float,
    *,
    tx: Transaction | None,
    command: str,
    replace: bool,
    wait: bool,
    finish: Callable[[Transaction], object] | None,
) -> BuildReport:
    """Run a build's ``work`` in ``tx``, or in its own transaction that it publishes.

    In its own transaction, ``finish`` runs after the shards and before the commit (the
    index of the new generation), and the published generation and the build record
    ``DB/build.json`` complete ``report``; in the caller's ``tx`` the caller commits.
    """
    if tx is not None:
        work(tx)
        report.seconds = time.perf_counter() - t0
        return report
    with Transaction(db, command, replace=replace, wait=wait) as own:
        work(own)
        if finish is not None:
            finish(own)
        published = own.commit()
        report.generation, report.rows_total = published.generation, published.rows
        report.seconds = time.perf_counter() - t0
        write_report(db, report)
    return report


def _run(
    tx: Transaction,
    meta: contract.DatasetMeta,
    rows: list[Row],
    espec: EmbedderSpec,
    report: BuildReport,
    min_valid: float,
    skip_empty: bool,
    runner: Runner,
) -> None:
    """Run the planned rows' shards in ``tx`` with ``runner``, filling ``report``."""
    tx.check_meta(meta)
    res, prt = meta.h3_resolution, meta.partition_resolution
    shards: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        shards[h3i.cell_to_parent(r.cell, prt)].append(r)
    report.shards_total = len(shards)
    bar = tqdm(total=len(rows), desc=f"embedding ({report.model})", unit="chip")

    def todo() -> Iterator[RasterShard]:
        for parent in sorted(shards):
            srows, part = shards[parent], cell_to_str(parent)
            key = shard_key(report.model, res, srows, min_valid=min_valid, skip_empty=skip_empty)
            if tx.has_shard(part, key):
                report.shards_skipped += 1
                bar.update(len(srows))
                continue
            yield RasterShard(part, key, tx.target(part, key), srows, meta, min_valid, skip_empty)

    def done(r: ShardResult) -> None:
        tx.add(r.record)
        report.rows_written += r.rows_written
        report.rows_dropped_empty += r.rows_dropped_empty
        report.rows_dropped_low_valid += r.rows_dropped_low_valid
        report.shards_written += 1
        bar.update(r.rows_planned)

    try:
        runner(todo(), espec, done)
    finally:
        bar.close()


def write_report(db: str | Path, report: BuildReport) -> None:
    """Write the build record ``DB/build.json`` (a log for people, not the published state)."""
    contract.atomic_write_bytes(
        Path(db) / contract.BUILD_STATE, json.dumps(report.to_dict(), indent=2).encode()
    )

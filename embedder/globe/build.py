"""Build a whole-planet database from the global layers: H3 cells -> chips -> embeddings.

Every land cell (GLOBE mask plus a one-cell coastal ring) at resolution ``res`` gets an
aligned chip per input layer (optical Blue Marble, elevation ETOPO, climate Koppen), is
embedded with a registered embedder and written through one write transaction
(:class:`~embedder.storage.Transaction`), one shard per H3 parent at the partition
resolution (:class:`~embedder.globe.shards.GlobalShard`, run by the local shard loop
:func:`~embedder.runner.run_local` or, with ``engine="ray"``, the Ray runner). A shard's
key hashes everything that fixes its content, so a re-run skips finished shards and an
interrupted build resumes after checking them; a partition written again (another
``limit``) is upserted, never doubled. MODIS IGBP labels of every cell go to
``DB/labels/modis_igbp.parquet`` (a label source only, never an embedder input), and the
majority Koppen climate zone of every cell to ``DB/labels/koppen.parquet``::

    from embedder.globe.build import build_global_db
    report = build_global_db("demo_db", res=4)          # ~94k land cells, well under a minute
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from embedder import contract
from embedder.build import PARTITION_OFFSET, BuildReport, run_build
from embedder.contract.manifest import LABELS
from embedder.globe.cells import check_res, iter_blocks
from embedder.globe.labels import (
    koppen_classes,
    koppen_path,
    labels_path,
    labels_table,
    majority_koppen,
    majority_labels,
)
from embedder.globe.layers import GlobalLayers, default_global_dir, input_layers
from embedder.globe.shards import BLOCK_CELLS, GlobalShard, block_table, embed_block, layers_at
from embedder.h3grid import cell_to_str
from embedder.registry import DEFAULT_MODEL, Embedder, config_hash, model_id
from embedder.runner import Runner, get_runner
from embedder.shard import EmbedderSpec, ShardResult, choose_batch_size
from embedder.storage import Transaction, derived_entry

if TYPE_CHECKING:
    from embedder.ray_runner import RayOptions

__all__ = [
    "BLOCK_CELLS",
    "block_table",
    "build_global_db",
    "dataset_meta",
    "embed_block",
    "global_partition_res",
]

KEY_FORMAT = "global-shard/2"


def global_partition_res(res: int) -> int:
    """Partition resolution used by the builds (same rule as :mod:`embedder.build`)."""
    return max(0, res - PARTITION_OFFSET)


def dataset_meta(emb: Embedder, layers: GlobalLayers, res: int, partition_res: int) -> contract.DatasetMeta:
    """The contract metadata of a global database."""
    return contract.DatasetMeta(
        model_name=emb.name,
        model_version=emb.version,
        dim=emb.dim,
        h3_resolution=res,
        partition_resolution=partition_res,
        model_config=emb.config(),
        normalisation=emb.normalisation(),
        sensors={layers.sensor(m).name: layers.sensor(m).summary() for m in input_layers()},
    )


def _layers_signature(layers: GlobalLayers) -> list[Any]:
    sig: list[Any] = [layers.grid.px, layers.grid.window_deg]
    for name in input_layers():
        p = layers.path(name)
        sig.append([name, p.name, p.stat().st_size, layers.sensor(name).summary()])
    return sig


def build_global_db(
    db: str | Path,
    res: int = 5,
    model: str = DEFAULT_MODEL,
    limit: int | None = None,
    land_only: bool = True,
    root: str | Path | None = None,
    batch_size: int | None = None,
    workers: int = 1,
    progress: bool = True,
    embedder: Embedder | None = None,
    layers: GlobalLayers | None = None,
    *,
    device: str | None = None,
    overwrite: bool = False,
    tx: Transaction | None = None,
    wait: bool = True,
    command: str = "",
    finish: Callable[[Transaction], object] | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
) -> BuildReport:
    """Build (or resume) a global database from the whole-Earth layers.

    Args:
        db: database folder (created when missing).
        res: H3 resolution (5: ~250 km2 cells, ~615k land cells; 4: ~94k land cells).
        model: registered embedder name.
        limit: embed at most this many cells (the first in H3 id order), e.g. for tests.
        land_only: keep only land and coastal cells (else every cell of the planet).
        root: folder of the global layers (default ``data/global`` under the repo root).
        batch_size: chips per embedder call (default :func:`embedder.shard.choose_batch_size`).
        workers: processes embedding shards in parallel (forked after the layers are
            loaded, so they share them). Only embedders that declare ``fork_safe = True``
            (numpy) are forked; a torch embedder (whose OpenMP pool does not survive a
            fork) runs in this process with its own threads, with a warning.
        progress: show a tqdm bar.
        embedder: an embedder instance to use instead of looking ``model`` up.
        layers: already loaded layers (reused between builds).
        device: torch device of the model (numpy models run on the CPU).
        overwrite: replace the database's embeddings (the old stay published until then).
        tx: an open :class:`~embedder.storage.Transaction` to write into (the caller commits).
        wait: wait for another writer of ``db`` (False: fail at once).
        command: what runs (shown to other writers; recorded in the manifest).
        finish: called with the transaction after the shards, before the commit (the CLI
            builds the index of the new generation there, so both are published together).
        engine: ``local`` (this process, or ``workers`` forks) or ``ray`` (a Ray Data
            cluster; every worker must read the layer folder at the same absolute path).
        ray: :class:`~embedder.ray_runner.RayOptions` of ``engine="ray"``.

    Returns:
        A :class:`~embedder.build.BuildReport`, also written to ``DB/build.json``.

    Raises:
        EarthvecError: missing layers, bad resolution, a database of another model, or a
            busy database; the published database is unchanged.
    """
    t0 = time.perf_counter()
    runner = get_runner(engine, workers=workers, ray=ray)
    db = Path(db)
    prt = global_partition_res(res)
    check_res(res, prt)
    layers = layers_at((layers.root if layers else root) or default_global_dir(), layers)
    espec = EmbedderSpec(
        embedder.name if embedder else model, device, choose_batch_size(device, batch_size), instance=embedder
    )
    emb = espec.load()
    meta = dataset_meta(emb, layers, res, prt)
    report = BuildReport(str(db), model_id(emb), res, 0)
    return run_build(
        db,
        lambda t: _run(t, layers, espec, meta, report, limit, land_only, runner, progress),
        report,
        t0,
        tx=tx,
        command=command or "build_global_db",
        replace=overwrite,
        wait=wait,
        finish=finish,
    )


def _run(
    tx: Transaction,
    layers: GlobalLayers,
    espec: EmbedderSpec,
    meta: contract.DatasetMeta,
    report: BuildReport,
    limit: int | None,
    land_only: bool,
    runner: Runner,
    progress: bool,
) -> None:
    """Run the global shards in ``tx`` with ``runner`` and write the label layers."""
    tx.check_meta(meta, "build into a new database folder, or pass overwrite=True (--overwrite)")
    res, prt = meta.h3_resolution, meta.partition_resolution
    base_key = config_hash(KEY_FORMAT, report.model, res, land_only, _layers_signature(layers))
    label_cells: list[np.ndarray] = []
    label_codes: list[np.ndarray] = []
    koppen_codes: list[np.ndarray] = []
    bar = tqdm(desc=f"global build ({report.model}, res {res})", unit="cell", disable=not progress)

    def todo() -> Iterator[GlobalShard]:
        for block in iter_blocks(layers, res, prt, land_only=land_only, limit=limit):
            report.rows_planned += len(block)
            report.shards_total += 1
            label_cells.append(block.cells)
            label_codes.append(majority_labels(layers, block.lat, block.lon, res))
            koppen_codes.append(majority_koppen(layers, block.lat, block.lon, res))
            part = cell_to_str(block.parent)
            key = config_hash(base_key, block.cells.tobytes())
            if tx.has_shard(part, key):
                report.shards_skipped += 1
                bar.update(len(block))
                continue
            yield GlobalShard(part, key, tx.target(part, key), block, root, meta)

    def done(r: ShardResult) -> None:
        tx.add(r.record)
        report.rows_written += r.rows_written
        report.rows_dropped_empty += r.rows_dropped_empty
        report.shards_written += 1
        bar.update(r.rows_planned)

    root = str(layers.root.resolve())  # workers (forks, Ray) load the layers from here once
    layers.prepare()  # loaded now: forks share them, the read-ahead thread never loads one twice
    try:
        runner(todo(), espec, done)
    finally:
        bar.close()
    if label_cells:
        cells = np.concatenate(label_cells)
        snap = tx.pending_snapshot()
        for path, table in (
            (labels_path(tx.db), labels_table(cells, np.concatenate(label_codes))),
            (koppen_path(tx.db), labels_table(cells, np.concatenate(koppen_codes), koppen_classes(layers))),
        ):
            contract.write_table_atomic(table, path)
            rel = path.relative_to(tx.db).as_posix()
            tx.put_derived(rel, derived_entry(LABELS, [rel], snap, report.model))

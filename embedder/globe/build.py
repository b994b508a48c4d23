"""Build a whole-planet database from the global layers: H3 cells -> chips -> embeddings.

Every land cell (GLOBE mask plus a one-cell coastal ring) at resolution ``res`` gets an
aligned chip per input layer (optical Blue Marble, elevation ETOPO, climate Koppen), is
embedded with a registered embedder and written through the contract, one Parquet shard
per H3 parent at the partition resolution. Shards are written atomically and named by a
hash of everything that fixes their content, so a re-run skips finished shards and an
interrupted build resumes. MODIS IGBP labels of every cell go to
``DB/labels/modis_igbp.parquet`` (a label source only, never an embedder input), and the
majority Koppen climate zone of every cell to ``DB/labels/koppen.parquet``::

    from embedder.globe.build import build_global_db
    report = build_global_db("demo_db", res=4)          # ~94k land cells, well under a minute
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from embedder import contract
from embedder.batch import ChipBatch, valid_fraction
from embedder.build import PARTITION_OFFSET, BuildReport
from embedder.globe.cells import CellBlock, check_res, iter_blocks
from embedder.globe.labels import (
    koppen_classes,
    koppen_path,
    labels_path,
    labels_table,
    majority_koppen,
    majority_labels,
)
from embedder.globe.layers import GlobalLayers, input_layers
from embedder.h3grid import cell_to_str, cells_wkb
from embedder.registry import DEFAULT_MODEL, Embedder, config_hash, get_embedder, model_id

KEY_PREFIX = "global-"
_WORKER: dict[str, Any] = {}  # what forked workers inherit: layers, embedder, meta, batch size
BLOCK_CELLS = 16_807  # cells chipped at once (7**5): ~90 MB of chips


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


def _row_lists(batch: ChipBatch, layers: GlobalLayers) -> tuple[list[list[str]], ...]:
    """Per-row modalities, sensors and source files (only the modalities present)."""
    names = list(batch.modalities)
    present = np.stack([batch.modalities[m].present for m in names], axis=1)
    codes = present.astype(np.int64) @ (1 << np.arange(len(names)))
    cache: dict[int, tuple[list[str], list[str], list[str]]] = {}
    for code in np.unique(codes).tolist():
        mods = [m for i, m in enumerate(names) if code >> i & 1]
        cache[code] = (
            mods,
            [layers.sensor(m).name for m in mods],
            layers.files(mods) if mods else [],
        )
    rows = [cache[c] for c in codes.tolist()]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def embed_block(
    layers: GlobalLayers, emb: Embedder, block: CellBlock, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray, ChipBatch]:
    """Chips and embeddings of one block: (embeddings (N, D), valid_fraction (N,), chips)."""
    batch = layers.chips(block.lat, block.lon)
    vecs = np.zeros((len(block), emb.dim), dtype=np.float32)
    for s in range(0, len(block), batch_size):
        rows = np.arange(s, min(s + batch_size, len(block)))
        vecs[rows] = emb.embed(batch.take(rows))
    return vecs, valid_fraction(batch), batch


def block_table(
    layers: GlobalLayers,
    emb: Embedder,
    block: CellBlock,
    meta: contract.DatasetMeta,
    batch_size: int = 4096,
) -> pa.Table:
    """The contract table of one block of cells (rows with no valid pixel dropped)."""
    tables = []
    for s in range(0, len(block), BLOCK_CELLS):
        part = block.take(slice(s, s + BLOCK_CELLS))
        vecs, vf, batch = embed_block(layers, emb, part, batch_size)
        keep = np.flatnonzero(vf > 0)
        part, vecs, vf, batch = part.take(keep), vecs[keep], vf[keep], batch.take(keep)
        mods, sensors, sources = _row_lists(batch, layers)
        tables.append(
            contract.make_table(
                h3=part.cells,
                lat=part.lat,
                lon=part.lon,
                geometry=cells_wkb(part.cells),
                datetime_=[None] * len(part),
                source=sources,
                modalities=mods,
                sensors=sensors,
                valid_fraction=vf,
                embedding=vecs,
                meta=meta,
            )
        )
    return pa.concat_tables(tables)


def write_shard(
    layers: GlobalLayers,
    emb: Embedder,
    block: CellBlock,
    meta: contract.DatasetMeta,
    path: Path,
    batch_size: int = 4096,
) -> int:
    """Embed one block and write it atomically to ``path``; returns the rows written.

    Older shards of the same partition from another global build configuration (another
    ``limit``) are removed, so a partition never holds a cell twice.
    """
    table = block_table(layers, emb, block, meta, batch_size)
    contract.write_table_atomic(table, path)
    for stale in path.parent.glob(f"part-{KEY_PREFIX}*.parquet"):
        if stale != path:
            stale.unlink()
    return int(table.num_rows)


def _work(task: tuple[CellBlock, Path]) -> tuple[int, int]:
    block, path = task
    w = _WORKER
    return len(block), write_shard(w["layers"], w["emb"], block, w["meta"], path, w["batch_size"])


def build_global_db(
    db: str | Path,
    res: int = 5,
    model: str = DEFAULT_MODEL,
    limit: int | None = None,
    land_only: bool = True,
    root: str | Path | None = None,
    batch_size: int = 4096,
    workers: int = 1,
    progress: bool = True,
    embedder: Embedder | None = None,
    layers: GlobalLayers | None = None,
) -> BuildReport:
    """Build (or resume) a global database from the whole-Earth layers.

    Args:
        db: database folder (created when missing).
        res: H3 resolution (5: ~250 km2 cells, ~615k land cells; 4: ~94k land cells).
        model: registered embedder name.
        limit: embed at most this many cells (the first in H3 id order), e.g. for tests.
        land_only: keep only land and coastal cells (else every cell of the planet).
        root: folder of the global layers (default ``data/global`` under the repo root).
        batch_size: chips per embedder call.
        workers: processes embedding shards in parallel (forked after the layers are
            loaded, so they share them). Only embedders that declare ``fork_safe = True``
            (the numpy baseline) are forked; a torch embedder (whose OpenMP pool does not
            survive a fork) runs in this process with its own threads, with a warning.
        progress: show a tqdm bar.
        embedder: an embedder instance to use instead of looking ``model`` up.
        layers: already loaded layers (reused between builds).

    Returns:
        A :class:`~embedder.build.BuildReport`, also written to ``DB/build.json``.

    Raises:
        EarthvecError: missing layers, bad resolution, or a database of another model.
    """
    t0 = time.perf_counter()
    db = Path(db)
    prt = global_partition_res(res)
    check_res(res, prt)
    layers = layers or GlobalLayers(root)
    emb = embedder or get_embedder(model)
    meta = dataset_meta(emb, layers, res, prt)
    contract.ensure_compatible(db, meta, "build into a new database folder or delete the old one")
    report = BuildReport(str(db), model_id(emb), res, 0)
    base_key = config_hash(report.model, res, land_only, _layers_signature(layers))
    label_cells: list[np.ndarray] = []
    label_codes: list[np.ndarray] = []
    koppen_codes: list[np.ndarray] = []
    bar = tqdm(desc=f"global build ({report.model}, res {res})", unit="cell", disable=not progress)

    def tasks() -> Iterator[tuple[CellBlock, Path]]:
        for block in iter_blocks(layers, res, prt, land_only=land_only, limit=limit):
            report.rows_planned += len(block)
            report.shards_total += 1
            label_cells.append(block.cells)
            label_codes.append(majority_labels(layers, block.lat, block.lon, res))
            koppen_codes.append(majority_koppen(layers, block.lat, block.lon, res))
            key = KEY_PREFIX + config_hash(base_key, block.cells.tobytes())
            path = contract.shard_path(db, cell_to_str(block.parent), key)
            if path.exists():
                report.shards_skipped += 1
                bar.update(len(block))
                continue
            yield block, path

    def done(n_cells: int, n_rows: int) -> None:
        report.rows_written += n_rows
        report.rows_dropped_empty += n_cells - n_rows
        report.shards_written += 1
        bar.update(n_cells)

    if workers > 1 and not getattr(emb, "fork_safe", False):
        warnings.warn(
            f"{report.model} is not fork-safe (torch threads); building in one process with "
            f"its own threads instead of {workers} worker processes",
            stacklevel=2,
        )
        workers = 1
    try:
        if workers > 1:
            layers.prepare()
            _WORKER.update(layers=layers, emb=emb, meta=meta, batch_size=batch_size)
            with mp.get_context("fork").Pool(workers) as pool:
                for n_cells, n_rows in pool.imap_unordered(_work, tasks()):
                    done(n_cells, n_rows)
            _WORKER.clear()
        else:
            for block, path in tasks():
                done(len(block), write_shard(layers, emb, block, meta, path, batch_size))
    finally:
        bar.close()
    if label_cells:
        cells = np.concatenate(label_cells)
        labels = labels_table(cells, np.concatenate(label_codes))
        contract.write_table_atomic(labels, labels_path(db))
        koppen = labels_table(cells, np.concatenate(koppen_codes), koppen_classes(layers))
        contract.write_table_atomic(koppen, koppen_path(db))
    report.seconds = time.perf_counter() - t0
    contract.atomic_write_bytes(db / contract.BUILD_STATE, json.dumps(report.to_dict(), indent=2).encode())
    return report

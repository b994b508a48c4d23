"""``build_global_db`` on a runner: H3 cell blocks -> read / embed / write steps.

The driver plans as :func:`embedder.globe.build.build_global_db` does (land cells per
partition parent, shard names hashing the build's configuration and the block's cells,
MODIS and Koppen labels of every cell); workers cut the chips from the global layers
(loaded once per worker process from the same folder, which every worker must see),
embed them and write each shard under its name. The files equal a local build's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from embedder import contract
from embedder.batch import ChipBatch, valid_fraction
from embedder.contract import BuildReport
from embedder.globe.build import (
    BLOCK_CELLS,
    KEY_PREFIX,
    _layers_signature,
    dataset_meta,
    global_partition_res,
)
from embedder.globe.cells import CellBlock, check_res, iter_blocks
from embedder.globe.grid import ChipGrid
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
from embedder.interface import Embedder, model_id
from embedder.registry import DEFAULT_MODEL, config_hash, get_embedder
from embedder.runners.interface import EmbedderSpec, ShardResult
from embedder.runners.ray_runner import RayOptions, run_ray
from embedder.runners.store import ShardStore, shard_name

_LAYERS: dict[tuple[str, ChipGrid], GlobalLayers] = {}  # per worker process: loaded once


def worker_layers(root: str, grid: ChipGrid) -> GlobalLayers:
    """The global layers under ``root``, loaded once per process (rasters load on first use)."""
    key = (root, grid)
    if key not in _LAYERS:
        _LAYERS[key] = GlobalLayers(root, grid)
    return _LAYERS[key]


@dataclass(frozen=True)
class GlobeShard:
    """One shard of a global build: the cells of one partition parent.

    Attributes:
        name: the shard file relative to the database root (deterministic).
        block: the cells with their centres.
    """

    name: str
    block: CellBlock


Embedded = list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]
"""Per sub-block of at most ``BLOCK_CELLS`` cells: vectors, valid fractions, presence per modality."""


@dataclass(frozen=True)
class GlobeJob:
    """Read, embed and write steps of a global build (pickled to the workers).

    Attributes:
        embedder: the embedder recipe.
        store: the database root.
        meta: the contract metadata.
        root: folder of the global layers (the same path on every worker).
        grid: the chip grid.
        facts: modality -> (sensor name, ``source`` file), as the driver's layers name them.
        batch_size: chips per embedder call.
    """

    embedder: EmbedderSpec
    store: ShardStore
    meta: contract.DatasetMeta
    root: str
    grid: ChipGrid
    facts: dict[str, tuple[str, str]]
    batch_size: int = 4096

    def read(self, spec: GlobeShard) -> list[tuple[ChipBatch, np.ndarray]]:
        """Chips and valid fractions per sub-block (the sub-blocks ``block_table`` embeds)."""
        layers = worker_layers(self.root, self.grid)
        out = []
        for s in range(0, len(spec.block), BLOCK_CELLS):
            part = spec.block.take(slice(s, s + BLOCK_CELLS))
            batch = layers.chips(part.lat, part.lon)
            out.append((batch, valid_fraction(batch)))
        return out

    def embed(self, emb: Embedder, spec: GlobeShard, parts: list[tuple[ChipBatch, np.ndarray]]) -> Embedded:
        """Vectors per sub-block, in ``batch_size`` calls as ``embed_block`` makes them."""
        out = []
        for batch, vf in parts:
            vecs = np.zeros((len(batch), emb.dim), dtype=np.float32)
            for s in range(0, len(batch), self.batch_size):
                rows = np.arange(s, min(s + self.batch_size, len(batch)))
                vecs[rows] = emb.embed(batch.take(rows))
            out.append((vecs, vf, {m: b.present for m, b in batch.modalities.items()}))
        return out

    def _row_lists(self, present: dict[str, np.ndarray]) -> tuple[list[list[str]], ...]:
        names = list(present)
        codes = np.stack([present[m] for m in names], axis=1).astype(np.int64) @ (1 << np.arange(len(names)))
        cache = {}
        for code in np.unique(codes).tolist():
            mods = [m for i, m in enumerate(names) if code >> i & 1]
            cache[code] = (mods, [self.facts[m][0] for m in mods], [self.facts[m][1] for m in mods])
        rows = [cache[c] for c in codes.tolist()]
        return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

    def write(self, spec: GlobeShard, embedded: Embedded) -> ShardResult:
        """Write the rows with a valid pixel (``block_table``'s table), drop stale shards."""
        tables = []
        for s, (vecs, vf, present) in zip(range(0, len(spec.block), BLOCK_CELLS), embedded, strict=True):
            keep = np.flatnonzero(vf > 0)
            part = spec.block.take(slice(s, s + BLOCK_CELLS)).take(keep)
            mods, sensors, sources = self._row_lists({m: p[keep] for m, p in present.items()})
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
                    valid_fraction=vf[keep],
                    embedding=vecs[keep],
                    meta=self.meta,
                )
            )
        table = pa.concat_tables(tables)
        self.store.write_table(spec.name, table)
        folder = str(PurePosixPath(spec.name).parent)
        for other in self.store.list_dir(folder):  # another limit's shard of this partition
            if other.startswith(f"part-{KEY_PREFIX}") and other != PurePosixPath(spec.name).name:
                self.store.delete(f"{folder}/{other}")
        n = int(table.num_rows)
        return ShardResult(spec.name, len(spec.block), n, rows_dropped_empty=len(spec.block) - n)


def build_global_db_ray(
    db: str | Path,
    res: int = 5,
    model: str = DEFAULT_MODEL,
    limit: int | None = None,
    land_only: bool = True,
    root: str | Path | None = None,
    batch_size: int = 4096,
    progress: bool = True,
    embedder: Embedder | None = None,
    layers: GlobalLayers | None = None,
    ray: RayOptions | None = None,
) -> BuildReport:
    """:func:`embedder.globe.build.build_global_db` on a Ray cluster (same files, same names).

    Args mirror ``build_global_db``; ``db`` may also be a pyarrow filesystem URI, and the
    layer folder (``root`` or ``layers.root``) must be readable at the same path on every
    worker. ``ray`` holds the cluster and resource options.

    Returns:
        A :class:`BuildReport`, also written to ``DB/build.json``.
    """
    t0 = time.perf_counter()
    store = ShardStore(db)
    prt = global_partition_res(res)
    check_res(res, prt)
    layers = layers or GlobalLayers(root)
    emb = embedder or get_embedder(model)
    meta = dataset_meta(emb, layers, res, prt)
    store.ensure_compatible(meta, "build into a new database folder or delete the old one")
    report = BuildReport(store.root, model_id(emb), res, 0)
    base_key = config_hash(report.model, res, land_only, _layers_signature(layers))
    cells, codes, kop, todo = [], [], [], []
    for block in iter_blocks(layers, res, prt, land_only=land_only, limit=limit):
        report.rows_planned += len(block)
        report.shards_total += 1
        cells.append(block.cells)
        codes.append(majority_labels(layers, block.lat, block.lon, res))
        kop.append(majority_koppen(layers, block.lat, block.lon, res))
        name = shard_name(
            cell_to_str(block.parent), KEY_PREFIX + config_hash(base_key, block.cells.tobytes())
        )
        if store.exists(name):
            report.shards_skipped += 1
        else:
            todo.append(GlobeShard(name, block))
    facts = {m: (layers.sensor(m).name, layers.files([m])[0]) for m in input_layers()}
    spec = EmbedderSpec.of(emb) if embedder is not None else EmbedderSpec.of(emb, model)
    job = GlobeJob(spec, store, meta, str(layers.root.resolve()), layers.grid, facts, batch_size)
    bar = tqdm(desc=f"global build ({report.model}, res {res}, ray)", unit="cell", disable=not progress)
    bar.update(report.rows_planned - sum(len(s.block) for s in todo))

    def record(r: ShardResult) -> None:
        report.rows_written += r.rows_written
        report.rows_dropped_empty += r.rows_dropped_empty
        report.shards_written += 1
        bar.update(r.rows_planned)

    try:
        run_ray(job, todo, ray, on_result=record)
    finally:
        bar.close()
    if cells:
        all_cells = np.concatenate(cells)
        here = Path(".")
        store.write_table(labels_path(here).as_posix(), labels_table(all_cells, np.concatenate(codes)))
        koppen = labels_table(all_cells, np.concatenate(kop), koppen_classes(layers))
        store.write_table(koppen_path(here).as_posix(), koppen)
    report.seconds = time.perf_counter() - t0
    store.write_bytes(contract.BUILD_STATE, json.dumps(report.to_dict(), indent=2).encode())
    return report

"""The global build's shard: the land cells of one H3 parent, chipped from the global layers.

:class:`GlobalShard` is the shard spec :func:`embedder.shard.run_shard` runs for
:func:`embedder.globe.build.build_global_db`. It carries its cells and the layer folder
(not the loaded layers): a worker finds the layers in a per-process cache, which a forked
worker inherits from the driver and any other worker (a Ray task or actor) fills on first
use. ``read()`` cuts the chips of a partition of at most :data:`BLOCK_CELLS` cells (the
runner runs it ahead of ``compute``: the local read-ahead thread, Ray's read tasks);
larger partitions are chipped and embedded by ``compute`` in blocks of that size, so
memory stays bounded however many cells a partition holds. Cells without a valid pixel
are dropped (and deleted from the partition's old rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from embedder import contract
from embedder.batch import ChipBatch, valid_fraction
from embedder.globe.cells import CellBlock
from embedder.globe.layers import GlobalLayers
from embedder.h3grid import cells_wkb
from embedder.interface import Embedder
from embedder.shard import ShardOutput
from embedder.storage.shardfile import ShardTarget

BLOCK_CELLS = 16_807  # cells chipped at once (7**5): ~90 MB of chips
_LAYERS: dict[str, GlobalLayers] = {}


def layers_at(root: str | Path, layers: GlobalLayers | None = None) -> GlobalLayers:
    """The layers under ``root``, loaded once per process (``layers`` registers an instance)."""
    key = str(Path(root).resolve())
    if layers is not None:
        _LAYERS[key] = layers
    if key not in _LAYERS:
        _LAYERS[key] = GlobalLayers(root)
    return _LAYERS[key]


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
    layers: GlobalLayers, emb: Embedder, block: CellBlock, batch_size: int, chips: ChipBatch | None = None
) -> tuple[np.ndarray, np.ndarray, ChipBatch]:
    """Chips and embeddings of one block: (embeddings (N, D), valid_fraction (N,), chips).

    ``chips``: the block's chips when already cut (else cut here).
    """
    batch = layers.chips(block.lat, block.lon) if chips is None else chips
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
    batch_size: int,
    chips: ChipBatch | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """The contract table of a block's cells with a valid pixel, and the cells dropped.

    ``chips``: the block's chips already cut (a block of at most :data:`BLOCK_CELLS` cells).
    """
    tables, dropped = [], []
    for s in range(0, len(block), BLOCK_CELLS):
        part = block.take(slice(s, s + BLOCK_CELLS))
        vecs, vf, batch = embed_block(layers, emb, part, batch_size, chips if s == 0 else None)
        keep = np.flatnonzero(vf > 0)
        dropped.append(part.cells[vf <= 0])
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
                embedding=vecs.reshape(-1, meta.dim),
                meta=meta,
            )
        )
    return pa.concat_tables(tables), np.concatenate(dropped)


@dataclass
class GlobalShard:
    """One partition of a global build (picklable; see the module docstring)."""

    partition: str
    key: str
    target: ShardTarget
    block: CellBlock
    root: str
    meta: contract.DatasetMeta

    @property
    def n_rows(self) -> int:
        """Cells planned."""
        return len(self.block)

    def read(self) -> ChipBatch | None:
        """The chips of a partition of at most :data:`BLOCK_CELLS` cells (None: larger, cut later)."""
        if len(self.block) > BLOCK_CELLS:
            return None
        return layers_at(self.root).chips(self.block.lat, self.block.lon)

    def compute(self, payload: Any, emb: Embedder, batch_size: int) -> ShardOutput:
        """Chip (unless ``payload`` holds the chips), embed and assemble the partition's rows."""
        layers = layers_at(self.root)
        table, dropped = block_table(layers, emb, self.block, self.meta, batch_size, payload)
        return ShardOutput(table, [(int(c), None) for c in dropped.tolist()], len(dropped), 0)

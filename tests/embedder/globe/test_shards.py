"""GlobalShard: chips read ahead (small partitions) or cut in blocks (large ones) give the same rows."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from embedder.batch import ChipBatch
from embedder.globe import shards
from embedder.globe.build import dataset_meta
from embedder.globe.cells import iter_blocks
from embedder.globe.shards import GlobalShard, layers_at
from embedder.h3grid import cell_to_str
from embedder.registry import get_embedder
from embedder.storage import ShardTarget

ROOT = Path(__file__).resolve().parents[3] / "data" / "global"


def test_read_ahead_chips_equal_chips_cut_in_compute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = layers_at(ROOT)
    emb = get_embedder("stats")
    block = max(iter_blocks(layers, 3, 0, limit=2000), key=len)
    part = cell_to_str(block.parent)
    target = ShardTarget(str(tmp_path), part, "k", "unused.parquet")
    spec = GlobalShard(part, "k", target, block, str(ROOT.resolve()), dataset_meta(emb, layers, 3, 0))
    payload = pickle.loads(pickle.dumps(spec.read()))  # as a Ray read task hands it on
    assert isinstance(payload, ChipBatch) and len(payload) == len(block) > 300
    ahead = spec.compute(payload, emb, 64)
    inline = spec.compute(None, emb, 64)
    assert ahead.table.num_rows > 300 and ahead.table.equals(inline.table) and ahead.delete == inline.delete
    monkeypatch.setattr(shards, "BLOCK_CELLS", len(block) // 3)  # a partition larger than a block
    assert spec.read() is None  # nothing read ahead: compute cuts and embeds it block by block
    blocked = spec.compute(None, emb, 64)
    assert blocked.table.equals(inline.table)
    np.testing.assert_array_equal(blocked.table.column("h3").to_numpy(), block.cells)

"""The block reader: same chips as a direct read, bounded blocks, files opened once per thread."""

from __future__ import annotations

import logging

import numpy as np

import embedder.rasterfile as rasterfile
from embedder.align import align_rows, plan_parts
from embedder.chips import read_chips
from embedder.reader import iter_row_pixels
from embedder.sources import items_for_source
from tests.conftest import LANDSAT_GLOB


def test_blocks_hold_the_same_chips_and_open_each_file_once_per_thread(monkeypatch, caplog):
    (item,) = items_for_source([LANDSAT_GLOB])
    rows = align_rows(plan_parts([item], 7, "auto"))
    oracle = read_chips(item, [r.parts["optical"].spec for r in rows], "scene")
    opened: list[str] = []
    real_open = rasterfile._open

    def counting(path: str):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(rasterfile, "_open", counting)
    monkeypatch.setattr("embedder.reader.PROGRESS_MIN_CHIPS", 10)
    seen = []
    with caplog.at_level(logging.INFO, logger="embedder.reader"):
        for idx, pixels in iter_row_pixels(rows, block_rows=16, threads=2):
            assert len(idx) <= 16 and set(pixels["optical"]) == set(idx)
            for i in idx:
                np.testing.assert_array_equal(pixels["optical"][i], oracle[i])
            seen.extend(idx)
    assert seen == list(range(len(rows))) == list(range(65))
    files = len(item.all_paths)  # 11 bands + BQA
    assert files == 12 and files <= len(opened) <= 2 * files  # once per file and reader thread, 5 blocks
    assert any("65 chips" in m for m in caplog.messages)  # the scene's progress is reported

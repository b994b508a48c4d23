"""Read the chips of aligned rows: in blocks, in parallel threads, files opened once per thread.

Memory is bounded by the block, not the scene: rows (in H3 cell order, so a block is a
compact patch of ground) are read ``block_rows`` at a time, the next block while the caller
embeds the current one. Each block's chips are grouped by raster item and cut into jobs of
``JOB_CHIPS`` chips for a thread pool; each thread keeps its own open datasets
(:class:`~embedder.rasterfile.OpenFiles`: rasterio datasets must not cross threads) for the
whole read, and GDAL's block cache is capped at ``GDAL_CACHE_MB``. A row's chip per modality
is its observation's chip with empty pixels filled from the other scenes of that observation,
or for a composite the per-pixel median of its observations. Scenes of at least
``PROGRESS_MIN_CHIPS`` chips get their own progress bar.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.env import get_gdal_config, set_gdal_config
from tqdm.auto import tqdm

from embedder.align import Part, Row
from embedder.chips import read_chips
from embedder.rasterfile import OpenFiles, RasterItem

log = logging.getLogger(__name__)

BLOCK_ROWS = 512  # rows per block: 512 x 13 bands x 64 x 64 float32 = 109 MB a modality
JOB_CHIPS = 32  # fewest chips per thread job
GDAL_CACHE_MB = 256  # GDAL block cache while reading
PROGRESS_MIN_CHIPS = 500  # scenes with at least this many chips get a progress bar
Key = tuple[int, int]  # (id of the item, cell)


def default_threads() -> int:
    """Reader threads: one core is left to the embedder, at most 4 (reads release the GIL).

    Even one reader thread overlaps reading the next block with embedding the current one.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n - 1))


def _key(p: Part) -> Key:
    return id(p.item), p.spec.cell


def _requests(rows: list[Row], idx: range) -> dict[int, list[Part]]:
    """Every (item, chip) the rows need, grouped by item id (each chip once)."""
    by_item: dict[int, dict[int, Part]] = defaultdict(dict)
    for i in idx:
        for part in rows[i].parts.values():
            for o in part.observations:
                for q in (o, *o.fill):
                    by_item[id(q.item)].setdefault(q.spec.cell, q)
    return {k: list(v.values()) for k, v in by_item.items()}


def assemble(part: Part, chips: dict[Key, np.ndarray]) -> np.ndarray:
    """A part's chip: its observation filled from its other scenes; a composite's per-pixel median."""
    obs = []
    for o in part.observations:
        a = chips[_key(o)]
        if o.fill:
            a = a.copy()
            for f in o.fill:
                hole = np.isnan(a)
                if not hole.any():
                    break
                a[hole] = chips[_key(f)][hole]
        obs.append(a)
    if len(obs) == 1:
        return obs[0]
    with warnings.catch_warnings():  # all-NaN pixels stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.stack(obs), axis=0).astype(np.float32)


class _Progress:
    """One progress bar per large scene, fed from reader threads."""

    def __init__(self, rows: list[Row]) -> None:
        totals: dict[int, int] = defaultdict(int)
        self.items: dict[int, RasterItem] = {}
        for reqs in _requests(rows, range(len(rows))).values():
            totals[id(reqs[0].item)] += len(reqs)
            self.items[id(reqs[0].item)] = reqs[0].item
        self.totals = totals
        self.done: dict[int, int] = defaultdict(int)
        self.started: dict[int, float] = {}
        self.bars: dict[int, tqdm] = {}
        self.lock = threading.Lock()

    def update(self, item: RasterItem, n: int) -> None:
        k = id(item)
        with self.lock:
            self.started.setdefault(k, time.perf_counter())
            if k not in self.bars and self.totals[k] >= PROGRESS_MIN_CHIPS:
                name = Path(item.key).name or item.key
                self.bars[k] = tqdm(total=self.totals[k], desc=f"reading {name}", unit="chip", leave=False)
            self.done[k] += n
            if k in self.bars:
                self.bars[k].update(n)
            if self.done[k] == self.totals[k]:
                if k in self.bars:
                    self.bars.pop(k).close()
                secs = time.perf_counter() - self.started[k]
                level = logging.INFO if self.totals[k] >= PROGRESS_MIN_CHIPS else logging.DEBUG
                log.log(level, "read %s: %d chips in %.1f s", item.key, self.totals[k], secs)

    def close(self) -> None:
        with self.lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()


class _Reader:
    """A thread pool whose threads each keep their own open files."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="earthvec-read")
        with rasterio.Env():  # GDAL's block cache (5% of RAM by default) capped while reading
            self.cache_was = get_gdal_config("GDAL_CACHEMAX")
            if not isinstance(self.cache_was, int) or self.cache_was > GDAL_CACHE_MB * 2**20:
                set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB * 2**20)
        self.local = threading.local()
        self.all_files: list[OpenFiles] = []
        self.lock = threading.Lock()

    def files(self) -> OpenFiles:
        f = getattr(self.local, "files", None)
        if f is None:
            f = self.local.files = OpenFiles()
            with self.lock:
                self.all_files.append(f)
        return f

    def job(self, parts: list[Part], progress: _Progress) -> list[tuple[Key, np.ndarray]]:
        first = parts[0]
        data = read_chips(first.item, [p.spec for p in parts], first.mode, self.files())
        progress.update(first.item, len(parts))
        return [(_key(p), data[k]) for k, p in enumerate(parts)]

    def submit(self, rows: list[Row], idx: range, progress: _Progress) -> list[Future]:
        futures = []
        for reqs in _requests(rows, idx).values():
            # contiguous runs of chips (neighbours on the ground) per thread: a source block is
            # then decoded by one thread's dataset, not by every thread's
            size = max(JOB_CHIPS, math.ceil(len(reqs) / self.threads))
            for start in range(0, len(reqs), size):
                futures.append(self.pool.submit(self.job, reqs[start : start + size], progress))
        return futures

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for f in self.all_files:
            f.close()
        if isinstance(self.cache_was, int):
            with rasterio.Env():
                set_gdal_config("GDAL_CACHEMAX", self.cache_was)


def iter_row_pixels(
    rows: list[Row], block_rows: int = BLOCK_ROWS, threads: int | None = None
) -> Iterator[tuple[range, dict[str, dict[int, np.ndarray]]]]:
    """Yield (row indexes, modality -> row index -> chip (C, H, W)) block by block.

    The next block is read while the caller works on the current one.

    Raises:
        RasterError: when a file cannot be read.
    """
    blocks = [range(s, min(s + block_rows, len(rows))) for s in range(0, len(rows), block_rows)]
    if not blocks:
        return
    reader = _Reader(threads or default_threads())
    progress = _Progress(rows)
    try:
        pending = reader.submit(rows, blocks[0], progress)
        for k, idx in enumerate(blocks):
            current = pending
            if k + 1 < len(blocks):
                pending = reader.submit(rows, blocks[k + 1], progress)
            chips: dict[Key, np.ndarray] = {}
            for fut in current:
                chips.update(fut.result())
            out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
            for i in idx:
                for modality, part in rows[i].parts.items():
                    out[modality][i] = assemble(part, chips)
            del chips
            yield idx, out
    finally:
        reader.close()
        progress.close()


def read_rows(rows: list[Row], threads: int | None = None) -> dict[str, dict[int, np.ndarray]]:
    """Every row's chips at once (small inputs; use :func:`iter_row_pixels` for scenes)."""
    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for _, block in iter_row_pixels(rows, block_rows=max(1, len(rows)), threads=threads):
        for modality, chips in block.items():
            out[modality].update(chips)
    return out

"""The raster build's shard: the rows of one H3 parent, read from their files and embedded.

:class:`RasterShard` is the shard spec :func:`embedder.shard.run_shard` runs for
:func:`embedder.build.build_db`: ``read()`` cuts every row's chips (each input file read
once, four files at a time), ``compute()`` embeds them in batches of one sensor
combination, drops empty chips and chips at or below ``min_valid``, and assembles the
contract table. Rows it planned but dropped are deleted from the partition's old rows,
so a rebuild with a stricter threshold removes them instead of keeping stale ones.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder import contract
from embedder.batch import ChipBatch, ModalityBatch, valid_fraction
from embedder.chips import read_chips
from embedder.errors import RasterError
from embedder.h3grid import cell_wkb
from embedder.interface import Embedder
from embedder.shard import ShardOutput
from embedder.storage.shardfile import ShardTarget
from embedder.vectors import config_hash

if TYPE_CHECKING:
    from embedder.build import Part, Row

KEY_FORMAT = "raster-shard/2"
MODALITY_ORDER = ("optical", "sar", "elevation", "climate")


def shard_key(
    model: str, res: int, rows: list[Row], *, min_valid: float = 0.0, skip_empty: bool = False
) -> str:
    """Hash of everything that fixes a shard's rows.

    Model ``name@version``, resolution, the thresholds (``min_valid``, ``skip_empty``), the
    sensor facts, and per row its cell, time, source files and chip modes.
    """
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
    return config_hash(KEY_FORMAT, model, res, float(min_valid), bool(skip_empty), facts, body)


def read_rows(rows: list[Row]) -> dict[str, dict[int, np.ndarray]]:
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


def embed_pixels(
    rows: list[Row], pixels: dict[str, dict[int, np.ndarray]], embedder: Embedder, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Embed read rows; returns (embeddings (N, D), valid_fraction (N,)) in row order."""
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


def embed_rows(rows: list[Row], embedder: Embedder, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Read and embed rows; returns (embeddings (N, D), valid_fraction (N,)) in row order."""
    return embed_pixels(rows, read_rows(rows), embedder, batch_size)


@dataclass
class RasterShard:
    """One partition of a raster build (picklable; see the module docstring)."""

    partition: str
    key: str
    target: ShardTarget
    rows: list[Row]
    meta: contract.DatasetMeta
    min_valid: float = 0.0
    skip_empty: bool = False

    @property
    def n_rows(self) -> int:
        """Rows planned."""
        return len(self.rows)

    def read(self) -> dict[str, dict[int, np.ndarray]]:
        """Every row's chips."""
        return read_rows(self.rows)

    def compute(self, payload: Any, emb: Embedder, batch_size: int) -> ShardOutput:
        """Embed, drop empty and low-valid chips, assemble the table.

        Raises:
            RasterError: a chip-mode file without a valid pixel (unless ``skip_empty``).
        """
        rows = self.rows
        vecs, vf = embed_pixels(rows, payload, emb, batch_size)
        keep = vf > self.min_valid
        empty = [r for r, v in zip(rows, vf, strict=True) if v <= 0.0]
        chip_mode_empty = [r for r in empty if any(p.mode == "chip" for p in r.parts.values())]
        if chip_mode_empty and not self.skip_empty:
            raise RasterError(
                f"{chip_mode_empty[0].sources[0]!r} holds no valid pixel (all nodata); remove it "
                f"from the sources or pass --skip-empty ({len(chip_mode_empty)} such chip(s) "
                "in this shard)"
            )
        kept = [r for r, k in zip(rows, keep, strict=True) if k]
        table = contract.make_table(
            h3=np.array([r.cell for r in kept], dtype=np.uint64),
            lat=np.array([r.lat for r in kept], dtype=np.float64),
            lon=np.array([r.lon for r in kept], dtype=np.float64),
            geometry=[cell_wkb(r.cell) for r in kept],
            datetime_=[r.datetime for r in kept],
            source=[r.sources for r in kept],
            modalities=[sorted(r.parts, key=MODALITY_ORDER.index) for r in kept],
            sensors=[sorted({p.item.sensor.name for p in r.parts.values()}) for r in kept],
            valid_fraction=vf[keep],
            embedding=vecs[keep].reshape(-1, self.meta.dim),
            meta=self.meta,
        )
        dropped = [(r.cell, r.datetime) for r, k in zip(rows, keep, strict=True) if not k]
        return ShardOutput(table, dropped, len(empty), int((~keep).sum()) - len(empty))

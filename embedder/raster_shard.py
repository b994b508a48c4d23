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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder import contract
from embedder.align import MODALITY_ORDER
from embedder.batch import ChipBatch, ModalityBatch, valid_fraction
from embedder.errors import RasterError
from embedder.h3grid import cell_wkb
from embedder.interface import Embedder
from embedder.reader import BLOCK_ROWS, iter_row_pixels
from embedder.shard import ShardOutput
from embedder.storage.shardfile import ShardTarget
from embedder.vectors import config_hash

if TYPE_CHECKING:
    from embedder.align import Row

KEY_FORMAT = "raster-shard/2"


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
    """Pixels per modality per row index of every row, held in memory (small shards only)."""
    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    for _, pixels in iter_row_pixels(rows):
        for modality, chips in pixels.items():
            out[modality].update(chips)
    return out


def _sensor_signature(row: Row) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (m, p.item.sensor.name + ":" + ",".join(p.item.sensor.band_names)) for m, p in row.parts.items()
        )
    )


def _embed_block(
    rows: list[Row],
    block: Sequence[int],
    pixels: dict[str, dict[int, np.ndarray]],
    embedder: Embedder,
    batch_size: int,
    out: tuple[np.ndarray, np.ndarray],
) -> None:
    """Embed the rows ``block`` (read into ``pixels``) into ``out = (embeddings, valid_fraction)``."""
    emb, vf = out
    groups: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for i in block:
        groups[_sensor_signature(rows[i])].append(i)
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


def embed_rows(
    rows: list[Row],
    embedder: Embedder,
    batch_size: int = 256,
    pixels: dict[str, dict[int, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed rows; returns (embeddings (N, D), valid_fraction (N,)) in row order.

    With ``pixels`` (from :func:`read_rows`) the rows are embedded from memory; without, they
    are read block by block (:func:`embedder.reader.iter_row_pixels`, the next block read
    while this one is embedded), so memory stays flat whatever the scene size.
    """
    out = (np.zeros((len(rows), embedder.dim), dtype=np.float32), np.zeros(len(rows), dtype=np.float32))
    blocks = iter_row_pixels(rows) if pixels is None else iter([(range(len(rows)), pixels)])
    for block, px in blocks:
        _embed_block(rows, block, px, embedder, batch_size, out)
    return out


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

    def read(self) -> dict[str, dict[int, np.ndarray]] | None:
        """Every row's chips, read ahead; None for a shard of more than one read block.

        A large shard (a whole scene in one partition) is read block by block while it is
        embedded instead, so memory stays bounded by the block size, not the scene.
        """
        return read_rows(self.rows) if self.n_rows <= BLOCK_ROWS else None

    def compute(self, payload: Any, emb: Embedder, batch_size: int) -> ShardOutput:
        """Embed, drop empty and low-valid chips, assemble the table.

        Raises:
            RasterError: a chip-mode file without a valid pixel (unless ``skip_empty``).
        """
        rows = self.rows
        vecs, vf = embed_rows(rows, emb, batch_size, payload)
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

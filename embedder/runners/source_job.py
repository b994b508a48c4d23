"""``build_db`` on a runner: raster sources -> shard specs -> read / embed / write steps.

The planning (items, ``--datetime``, resolution, rows aligned by cell, one shard per H3
parent named by the hash of its content) and the three steps reuse the pieces of
:mod:`embedder.build` (``plan_parts``, ``align_rows``, its shard key, ``embed_rows``), so a
distributed build writes the files a local build writes, under the same names.

Until the storage transaction lands, the driver records shards the way ``build_db`` does:
a shard is finished when its file exists, and ``DB/build.json`` is written at the end.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from embedder import contract
from embedder.build import (
    MODALITY_ORDER,
    PARTITION_OFFSET,
    Row,
    SourceSpec,
    _items,
    _read_rows,
    _shard_key,
    align_rows,
    embed_rows,
    plan_parts,
)
from embedder.chips import default_resolution
from embedder.contract import BuildReport
from embedder.errors import RasterError
from embedder.h3grid import cell_to_str, cell_wkb
from embedder.interface import Embedder, model_id
from embedder.registry import DEFAULT_MODEL, get_embedder
from embedder.runners.interface import EmbedderSpec, ShardResult
from embedder.runners.ray_runner import RayOptions, run_ray
from embedder.runners.store import ShardStore, shard_name
from embedder.sources import in_window, parse_datetime_window


@dataclass(frozen=True)
class SourceShard:
    """One shard of a source build: the rows under one H3 parent.

    Attributes:
        name: the shard file relative to the database root (deterministic).
        rows: the rows, each with the parts (item and chip window) per modality.
    """

    name: str
    rows: list[Row]


@dataclass(frozen=True)
class SourceJob:
    """Read, embed and write steps of a source build (pickled to the workers)."""

    embedder: EmbedderSpec
    store: ShardStore
    meta: contract.DatasetMeta
    min_valid: float = 0.0
    skip_empty: bool = False
    batch_size: int = 256

    def read(self, spec: SourceShard) -> dict[str, dict[int, np.ndarray]]:
        """Pixels per modality per row (each item read once)."""
        return _read_rows(spec.rows)

    def embed(
        self, emb: Embedder, spec: SourceShard, pixels: dict[str, dict[int, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (N, D), valid fractions (N,)) in row order."""
        return embed_rows(spec.rows, emb, self.batch_size, pixels=pixels)

    def write(self, spec: SourceShard, embedded: tuple[np.ndarray, np.ndarray]) -> ShardResult:
        """Write the kept rows (the same table ``build_db`` writes) and return the record.

        Raises:
            RasterError: an all-nodata chip file without ``skip_empty`` (nothing written).
        """
        vecs, vf = embedded
        srows = spec.rows
        keep = vf > self.min_valid
        empty = [r for r, v in zip(srows, vf, strict=True) if v <= 0.0]
        chip_mode_empty = [r for r in empty if any(p.mode == "chip" for p in r.parts.values())]
        if chip_mode_empty and not self.skip_empty:
            raise RasterError(
                f"{chip_mode_empty[0].sources[0]!r} holds no valid pixel (all nodata); remove it "
                f"from the sources or pass --skip-empty ({len(chip_mode_empty)} such chip(s) "
                "in this shard)"
            )
        kept = [r for r, k in zip(srows, keep, strict=True) if k]
        if kept:
            table = contract.make_table(
                h3=np.array([r.cell for r in kept], dtype=np.uint64),
                lat=np.array([r.lat for r in kept]),
                lon=np.array([r.lon for r in kept]),
                geometry=[cell_wkb(r.cell) for r in kept],
                datetime_=[r.datetime for r in kept],
                source=[r.sources for r in kept],
                modalities=[sorted(r.parts, key=MODALITY_ORDER.index) for r in kept],
                sensors=[sorted({p.item.sensor.name for p in r.parts.values()}) for r in kept],
                valid_fraction=vf[keep],
                embedding=vecs[keep],
                meta=self.meta,
            )
            self.store.write_table(spec.name, table)
        return ShardResult(
            spec.name,
            rows_planned=len(srows),
            rows_written=len(kept),
            rows_dropped_empty=len(empty),
            rows_dropped_low_valid=int((~keep).sum()) - len(empty),
        )


def plan_source_build(
    store: ShardStore,
    sources: Sequence[SourceSpec | str],
    *,
    sensor: str | None = None,
    bands: list[str] | None = None,
    res: int | None = None,
    model: str = DEFAULT_MODEL,
    mode: str = "auto",
    partition_res: int | None = None,
    overwrite: bool = False,
    embedder: Embedder | None = None,
    datetime_window: str | None = None,
) -> tuple[contract.DatasetMeta, EmbedderSpec, list[SourceShard], BuildReport]:
    """Everything ``build_db`` decides before embedding: metadata, embedder, shards, report.

    Returns:
        (metadata, embedder spec, every shard in H3 order, a report with the plan's counts).

    Raises:
        EarthvecError: as :func:`embedder.build.build_db`.
    """
    specs = [s if isinstance(s, SourceSpec) else SourceSpec([s], sensor, bands) for s in sources]
    items = _items(specs)
    n_all = len(items)
    if datetime_window:
        window = parse_datetime_window(datetime_window)
        items = [i for i in items if in_window(i.datetime, window)]
        if not items:
            raise RasterError(
                f"no input was acquired in --datetime {datetime_window} ({n_all} input(s) outside it or "
                "without a known time); widen the window"
            )
    res = default_resolution(items[0].sensor.chip_size_m) if res is None else int(res)
    if not 0 <= res <= 15:
        raise ValueError(f"--res {res} is not an H3 resolution; use 0..15")
    prt = max(0, res - PARTITION_OFFSET) if partition_res is None else int(partition_res)
    emb = embedder or get_embedder(model)
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
    if overwrite:
        for sub in (contract.EMBEDDINGS_DIR, contract.INDEX_DIR):
            store.delete_dir(sub)
    else:
        store.ensure_compatible(
            meta, "build into a new database folder, or pass --overwrite to replace the old embeddings"
        )
    rows = align_rows(plan_parts(items, res, mode))
    report = BuildReport(store.root, model_id(emb), res, len(rows))
    report.items_outside_datetime = n_all - len(items)
    import h3.api.basic_int as h3i

    by_parent: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        by_parent[h3i.cell_to_parent(r.cell, prt)].append(r)
    shards = [
        SourceShard(shard_name(cell_to_str(p), _shard_key(report.model, res, by_parent[p])), by_parent[p])
        for p in sorted(by_parent)
    ]
    report.shards_total = len(shards)
    spec = EmbedderSpec.of(emb) if embedder is not None else EmbedderSpec.of(emb, model)
    return meta, spec, shards, report


def build_db_ray(
    db: str | Path,
    sources: Sequence[SourceSpec | str],
    *,
    min_valid: float = 0.0,
    skip_empty: bool = False,
    batch_size: int = 256,
    ray: RayOptions | None = None,
    **plan: object,
) -> BuildReport:
    """:func:`embedder.build.build_db` on a Ray cluster (same files, same names, resumable).

    Args:
        db: database folder, or a pyarrow filesystem URI every worker can write to.
        sources: as ``build_db``.
        min_valid: as ``build_db``.
        skip_empty: as ``build_db``.
        batch_size: chips per embedder call.
        ray: cluster and resource options.
        **plan: the planning options of ``build_db`` (``sensor``, ``bands``, ``res``,
            ``model``, ``mode``, ``partition_res``, ``overwrite``, ``embedder``,
            ``datetime_window``).

    Returns:
        The :class:`BuildReport`, also written to ``DB/build.json``.
    """
    t0 = time.perf_counter()
    store = ShardStore(db)
    meta, emb_spec, shards, report = plan_source_build(store, sources, **plan)  # type: ignore[arg-type]
    todo = []
    for s in shards:
        if store.exists(s.name):
            report.shards_skipped += 1
        else:
            todo.append(s)
    job = SourceJob(emb_spec, store, meta, min_valid, skip_empty, batch_size)
    bar = tqdm(total=report.rows_planned, desc=f"embedding ({report.model}, ray)", unit="chip")
    bar.update(sum(len(s.rows) for s in shards) - sum(len(s.rows) for s in todo))

    def record(r: ShardResult) -> None:
        report.rows_written += r.rows_written
        report.rows_dropped_empty += r.rows_dropped_empty
        report.rows_dropped_low_valid += r.rows_dropped_low_valid
        report.shards_written += 1
        bar.update(r.rows_planned)

    try:
        run_ray(job, todo, ray, on_result=record)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    store.write_bytes(contract.BUILD_STATE, json.dumps(report.to_dict(), indent=2).encode())
    return report

"""Throughput of the pretrained-model plugins: chips/s on real EuroSAT chips, by batch size.

Each row embeds the same real EuroSAT-MS chips (64 x 64 px, 13 bands, resized to the model's
224 px input as the published transform does) with weights made here from a seed (throughput
does not depend on the weights' values; nothing is downloaded). The first batch is a warm-up
and is not timed. ``chips/cpu-s`` divides by the process's CPU time (all threads): on a shared
machine it says what the code does per core-second, whatever the other jobs take. Run::

    python -m bench.plugins --threads 2 --chips 64 --batch-sizes 1,8,32 --out plugins.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedder.batch import ChipBatch, ModalityBatch
from embedder.contract import atomic_write_bytes
from embedder.datapath import data_dir
from embedder.sensors import get_sensor

SENSOR = "sentinel2-l1c-eurosat"
ARCH = {"ssl4eo-resnet18": "resnet18", "ssl4eo-resnet50": "resnet50"}


def eurosat_batch(n: int, root: str | Path | None = None) -> ChipBatch:
    """``n`` real EuroSAT-MS chips (cycling over the classes) in physical units."""
    import rasterio

    folder = data_dir(root) / "eurosat_ms" / "tif"
    groups = [sorted(c.glob("*.tif")) for c in sorted(folder.iterdir()) if c.is_dir()]
    files = [f for g in zip(*groups, strict=False) for f in g][:n]
    s = get_sensor(SENSOR)
    data = np.stack([s.to_physical(rasterio.open(f).read()) for f in files])
    wl = np.array([b.wavelength_nm for b in s.bands], dtype=float)
    return ChipBatch({"optical": ModalityBatch(s.name, s.band_names, wl, data, np.ones(len(files), bool))})


def measure(model: str, weights: Path, batch: ChipBatch, batch_size: int, precision: str) -> dict[str, Any]:
    """Chips/s of ``model`` embedding ``batch`` in batches of ``batch_size`` (after one warm-up batch)."""
    from embedder.registry import get_embedder

    emb: Any = get_embedder(model, weights=weights, batch_size=batch_size, precision=precision)
    emb.embed(batch.take(np.arange(min(batch_size, len(batch)))))  # warm-up
    t, cpu = time.perf_counter(), time.process_time()
    vecs = emb.embed(batch)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    assert vecs.shape == (len(batch), emb.dim)
    return {
        "model": model,
        "device": str(emb.device),
        "precision": precision,
        "batch_size": batch_size,
        "chips": len(batch),
        "chip_px": int(batch.modalities["optical"].data.shape[-1]),
        "input_px": emb.spec.input.crop,
        "seconds": round(seconds, 3),
        "chips_per_s": round(len(batch) / seconds, 2),
        "cpu_seconds": round(cpu_seconds, 3),
        "chips_per_cpu_s": round(len(batch) / cpu_seconds, 2),
    }


def run(
    models: list[str], chips: int, batch_sizes: list[int], precisions: list[str], threads: int
) -> dict[str, Any]:
    """Every (model, precision, batch size) row, with the machine facts that qualify them."""
    import torch

    from embedder.pretrained.resnet import ResNetFeatures
    from embedder.pretrained.weights import save_seeded

    torch.set_num_threads(threads)
    batch = eurosat_batch(chips)
    rows = []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            weights = save_seeded(ResNetFeatures(ARCH[model], 13), Path(tmp) / f"{model}.pt", 0)
            for precision in precisions:
                for bs in batch_sizes:
                    rows.append(measure(model, weights, batch, bs, precision))
                    print(_line(rows[-1]), flush=True)
    return {
        "rows": rows,
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "load_average_at_start": [round(v, 2) for v in load0],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
    }


HEADER = (
    f"{'model':18s} {'device':6s} {'prec':5s} {'batch':>5s} {'chips':>5s} {'seconds':>8s} {'chips/s':>8s}"
)


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['model']:18s} {r['device']:6s} {r['precision']:5s} {r['batch_size']:5d} {r['chips']:5d} "
        f"{r['seconds']:8.2f} {r['chips_per_s']:8.2f} {r['cpu_seconds']:8.2f} {r['chips_per_cpu_s']:11.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the throughput table and write it as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.plugins", description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(ARCH), help="comma list of plugin names")
    p.add_argument("--chips", type=int, default=64, help="real EuroSAT chips embedded per row")
    p.add_argument("--batch-sizes", default="1,8,32", help="comma list of batch sizes")
    p.add_argument("--precisions", default="fp32", help="comma list of fp32, bf16, fp16")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", default="bench_results/plugins.json", help="JSON report path")
    a = p.parse_args(argv)
    print(HEADER, flush=True)
    result = run(
        [m for m in a.models.split(",") if m],
        a.chips,
        [int(b) for b in a.batch_sizes.split(",") if b],
        [x for x in a.precisions.split(",") if x],
        a.threads,
    )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, json.dumps(result, indent=2).encode())
    print(
        f"wrote {out}; load average {result['machine']['load_average_at_end']} (timings are shared-machine)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

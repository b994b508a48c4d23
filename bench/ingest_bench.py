"""The ingest benchmark: chips read and cut per second, and peak memory, against a plain loop.

Run from the repository root::

    python -m bench.ingest_bench            # Landsat-8 scene, a 6 x 6 Landsat mosaic, a full S2 tile
    python -m bench.ingest_bench --quick    # smaller mosaics (a minute or two)

What is timed is reading and cutting chips (embedding excluded), on the same planned chips:

- **earthvec**: ``embedder.reader.iter_row_pixels``: blocks of rows, reader threads, each
  file opened once per thread, NaN for nodata and quality-masked pixels, bands resampled
  onto the chip grid (the BQA mask of the Landsat scene is read too).
- **earthvec, 4 threads**: the same with 4 reader threads (the default leaves one core to the
  embedder: ``embedder.reader.default_threads``), to show what threads add on this machine.
- **plain rasterio loop**: for every chip and band file, ``rasterio.open`` the file and read
  the chip's window (``boundless``, resampled to 64 x 64): what a script without earthvec does.
  On the large sets it runs on an even sample of the chips (``chips_timed``).

Each read is repeated (5 times on the Landsat scene, twice on the 6 x 6 mosaic, once on the
full tile) and the fastest counts, since other jobs share the machine.

Data: the real Landsat-8 scene (``data/landsat8``); and two **throughput sets** made by
:mod:`bench.mosaic` as GDAL VRTs of the real files (real pixels tiled side by side, not a
real place): 6 x 6 copies of the Landsat scene, and a full 10,980 x 10,980 px Sentinel-2
tile of the BigEarthNet patches. Each measurement runs in its own process, so its peak
resident memory (``ru_maxrss``) is its own. A table is printed and JSON written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATASETS = ("landsat8", "landsat8_x6", "s2_tile")
METHODS = ("plain", "earthvec", "earthvec_4threads")
PLAIN_SAMPLE = 400  # chips the plain loop reads on the large sets


def log(msg: str) -> None:
    """Progress to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_sets(data: Path, work: Path, quick: bool) -> dict[str, dict[str, Any]]:
    """Source patterns, H3 resolution and a label for each data set (mosaics written to ``work``)."""
    from bench.mosaic import S2_TILE_PX, landsat_mosaic, s2_tile

    k = 3 if quick else 6
    tile = 2760 if quick else S2_TILE_PX
    landsat_mosaic(data, work / "l8", k)
    s2_tile(data, work / "s2", tile_px=tile)
    return {
        "landsat8": {
            "pattern": str(data / "landsat8" / "l8_B*.tif"),
            "res": 7,
            "repeats": 5,
            "label": "Landsat-8 scene 627x603 px, 11 bands + BQA (real)",
        },
        "landsat8_x6": {
            "pattern": str(work / "l8" / "*.vrt"),
            "res": 7,
            "repeats": 2,
            "label": f"throughput set: {k}x{k} Landsat-8 scenes, VRT ({627 * k}x{603 * k} px)",
        },
        "s2_tile": {
            "pattern": str(work / "s2" / "*.vrt"),
            "res": 8,
            "repeats": 2 if quick else 1,
            "label": f"throughput set: S2 tile {tile}x{tile} px at 10 m, 12 band VRTs of BigEarthNet patches",
        },
    }


def _plain_loop(rows: list, sample: int) -> tuple[int, float]:
    """Open each band file and read each chip's window on its own; returns (chips, seconds)."""
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    step = max(1, len(rows) // sample) if sample else 1
    chosen = rows[::step][: sample or None]
    t = time.perf_counter()
    for row in chosen:
        part = row.parts["optical"]
        s, spec = part.item.sensor, part.spec
        half = s.chip_size_m / 2
        chip = np.zeros((len(s.bands), s.chip_px, s.chip_px), np.float32)
        for c, band in enumerate(s.band_names):
            path, idx = part.item.band_files[band]
            with rasterio.open(path) as src:
                win = from_bounds(spec.x - half, spec.y - half, spec.x + half, spec.y + half, src.transform)
                chip[c] = src.read(
                    idx,
                    window=win,
                    out_shape=(s.chip_px, s.chip_px),
                    boundless=True,
                    fill_value=0,
                    resampling=Resampling.bilinear,
                )
    return len(chosen), time.perf_counter() - t


def measure(pattern: str, res: int, method: str, sample: int, repeats: int = 1) -> dict[str, Any]:
    """One measurement in this process: plan the chips, then read them with ``method``.

    The read is repeated ``repeats`` times and the fastest counts (others share the machine).
    """
    import psutil

    from embedder.align import align_rows, plan_parts
    from embedder.reader import default_threads, iter_row_pixels
    from embedder.sources import items_for_source

    base_mb = psutil.Process().memory_info().rss / 2**20
    t = time.perf_counter()
    items = items_for_source([pattern])
    rows = align_rows(plan_parts(items, res, "auto"))
    plan_s = time.perf_counter() - t
    threads = {"earthvec": default_threads(), "earthvec_4threads": 4}.get(method, 1)

    def once() -> tuple[int, float]:
        if method == "plain":
            return _plain_loop(rows, sample)
        t = time.perf_counter()
        n = 0
        for idx, _ in iter_row_pixels(rows, threads=threads):
            n += len(idx)
        return n, time.perf_counter() - t

    n, secs = min((once() for _ in range(max(1, repeats))), key=lambda r: r[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "chips_total": len(rows),
        "threads": threads,
        "chips_timed": n,
        "seconds": round(secs, 2),
        "repeats": repeats,
        "chips_per_s": round(n / secs, 1),
        "plan_s": round(plan_s, 2),
        "baseline_mb": round(base_mb, 1),
        "peak_mb": round(peak, 1),
    }


def _child(pattern: str, res: int, method: str, sample: int, repeats: int) -> dict[str, Any]:
    one = [pattern, str(res), method, str(sample), str(repeats)]
    cmd = [sys.executable, "-m", "bench.ingest_bench", "--one", *one]
    env = dict(os.environ, TQDM_DISABLE="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


SPEEDUP_TARGET = 3.0  # earthvec against the plain loop
MEMORY_TARGET_MB = 2048.0  # a full Sentinel-2 tile


def check_targets(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up of earthvec over the plain loop per data set, and peak memory against scene size."""
    ev = {r["dataset"]: r for r in results if r["method"] == "earthvec"}
    speed = {k: r["speedup"] for k, r in ev.items()}
    lines = [
        f"target >= {SPEEDUP_TARGET:g}x the plain loop: "
        + ", ".join(f"{k} {v:.1f}x" for k, v in speed.items())
    ]
    out: dict[str, Any] = {"speedup": speed, "speedup_met": all(v >= SPEEDUP_TARGET for v in speed.values())}
    if "s2_tile" in ev:
        peak = ev["s2_tile"]["peak_mb"]
        out.update(s2_tile_peak_mb=peak, memory_met=peak < MEMORY_TARGET_MB)
        n = ev["s2_tile"]["chips_total"]
        lines.append(f"S2 tile ({n} chips): peak {peak:.0f} MB (target < {MEMORY_TARGET_MB:.0f})")
    if len(ev) > 1:
        small, big = (
            min(ev.values(), key=lambda r: r["chips_total"]),
            max(ev.values(), key=lambda r: r["chips_total"]),
        )
        growth = big["peak_mb"] / small["peak_mb"]
        out.update(
            peak_growth=round(growth, 2), chips_growth=round(big["chips_total"] / small["chips_total"], 1)
        )
        lines.append(
            f"memory vs scene size: {big['chips_total'] / small['chips_total']:.0f}x the chips, "
            f"{growth:.2f}x the peak memory ({small['peak_mb']:.0f} -> {big['peak_mb']:.0f} MB)"
        )
    out["lines"] = lines
    return out


def table(results: list[dict[str, Any]]) -> str:
    """The printed table: one line per data set and method, speed-up against the plain loop."""
    lines = [
        f"{'data set':14s} {'method':18s} {'threads':>7s} {'chips':>7s} {'timed':>6s} {'chips/s':>8s} "
        f"{'x plain':>8s} {'peak MB':>8s}"
    ]
    for r in results:
        lines.append(
            f"{r['dataset']:14s} {r['method']:18s} {r['threads']:7d} {r['chips_total']:7d} "
            f"{r['chips_timed']:6d} {r['chips_per_s']:8.1f} {r.get('speedup', 1.0):8.1f} {r['peak_mb']:8.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every data set and method side by side; print the table and write JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller mosaics")
    p.add_argument("--data", default=os.environ.get("EARTHVEC_DATA", "data"), help="sample-data folder")
    p.add_argument("--out", default="bench_results/ingest.json", help="JSON file")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}")
    p.add_argument(
        "--one", nargs=5, metavar=("PATTERN", "RES", "METHOD", "SAMPLE", "REPEATS"), help=argparse.SUPPRESS
    )
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one[0], int(a.one[1]), a.one[2], int(a.one[3]), int(a.one[4]))))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="earthvec-ingest-") as tmp:
        sets = make_sets(Path(a.data).resolve(), Path(tmp), a.quick)
        for name in a.datasets.split(","):
            ds = sets[name]
            plain_rate = None
            for method in METHODS:
                if method == "earthvec_4threads" and name == "s2_tile" and not a.quick:
                    continue  # the full tile once is enough; threads are measured on the others
                sample = PLAIN_SAMPLE if (method == "plain" and name != "landsat8") else 0
                log(f"{name}: {method} ...")
                r = _child(ds["pattern"], ds["res"], method, sample, ds["repeats"])
                r.update(dataset=name, method=method, label=ds["label"])
                if method == "plain":
                    plain_rate = r["chips_per_s"]
                r["speedup"] = round(r["chips_per_s"] / plain_rate, 2) if plain_rate else None
                log(f"  {r['chips_timed']} chips, {r['chips_per_s']} chips/s, peak {r['peak_mb']} MB")
                results.append(r)
    print(table(results))
    for name in dict.fromkeys(r["dataset"] for r in results):
        print(f"  {name}: {sets[name]['label']}")
    targets = check_targets(results)
    for line in targets["lines"]:
        print(line)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "quick": a.quick}
    out.write_text(json.dumps({"meta": meta, "results": results, "targets": targets}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

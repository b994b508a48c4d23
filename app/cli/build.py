"""``earthvec build DB --source PATH_OR_GLOB [--source ...] [--sensor NAME] [--res R] [--model NAME]``."""

from __future__ import annotations

import argparse

HELP = "Cut imagery into H3 chips, embed them and write H3-keyed Parquet."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec build``."""
    p.add_argument("db", nargs="?", help="database folder to create or extend")
    p.add_argument(
        "--source",
        action="append",
        metavar="PATH_OR_GLOB",
        help="GeoTIFF/COG path, folder, glob ('**' allowed) or GDAL URL; repeat for more sources",
    )
    p.add_argument(
        "--sensor",
        action="append",
        metavar="NAME",
        help="sensor preset: one for all sources, or one per --source in order (auto-detected if omitted)",
    )
    p.add_argument("--bands", help="comma-separated band order of the files, overriding the preset")
    p.add_argument("--res", type=int, help="H3 resolution of the chips (default: matches the chip size)")
    p.add_argument("--model", default=None, help="embedder name (default: the shipped default model)")
    p.add_argument(
        "--mode",
        choices=["auto", "chip", "scene"],
        default="auto",
        help="chip: each file is one chip; scene: tile files into chips; auto: by file size",
    )
    p.add_argument(
        "--min-valid",
        type=float,
        default=0.0,
        help="drop chips whose share of valid pixels is at or below this (default 0)",
    )
    p.add_argument("--skip-empty", action="store_true", help="drop all-nodata chip files instead of failing")
    p.add_argument("--overwrite", action="store_true", help="replace embeddings already in DB")
    p.add_argument("--list-sensors", action="store_true", help="print the sensor presets and exit")


def run(args: argparse.Namespace) -> int:
    """Build the database and print a summary."""
    from embedder.build import SourceSpec, build_db
    from embedder.registry import DEFAULT_MODEL
    from embedder.sensors import get_sensor, sensor_names

    if args.list_sensors:
        for name in sensor_names():
            s = get_sensor(name)
            print(f"{name:28s} {s.modality:9s} {','.join(s.band_names)}  {s.title}")
        return 0
    if not args.db or not args.source:
        raise SystemExit("earthvec build: give a database folder and at least one --source")
    sensors = args.sensor or []
    if len(sensors) > 1 and len(sensors) != len(args.source):
        raise SystemExit("earthvec build: give one --sensor for all sources or one per --source")
    bands = args.bands.split(",") if args.bands else None
    specs = [
        SourceSpec([src], sensors[i] if len(sensors) > 1 else (sensors[0] if sensors else None), bands)
        for i, src in enumerate(args.source)
    ]
    report = build_db(
        args.db,
        specs,
        res=args.res,
        model=args.model or DEFAULT_MODEL,
        mode=args.mode,
        min_valid=args.min_valid,
        skip_empty=args.skip_empty,
        overwrite=args.overwrite,
    )
    print(
        f"built {args.db}: {report.rows_written} rows written in {report.shards_written} shard(s), "
        f"{report.shards_skipped} shard(s) already done, {report.rows_dropped_empty} empty chip(s) dropped; "
        f"model {report.model}, H3 res {report.resolution}; {report.seconds:.1f} s "
        f"({report.rows_per_second:.0f} rows/s)"
    )
    return 0

"""``earthvec build DB --source PATH_OR_GLOB[::sensor=NAME][::bands=A,B] ... [--stac CATALOG ...]``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from embedder.interface import Embedder

T = TypeVar("T")

HELP = "Cut imagery into H3 chips, embed them and write H3-keyed Parquet."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec build``."""
    p.add_argument("db", nargs="?", help="database folder to create or extend")
    p.add_argument(
        "--source",
        action="append",
        metavar="PATH_OR_GLOB",
        help="GeoTIFF/COG path, folder, glob ('**' allowed) or GDAL URL; repeat for more sources. "
        "Per-source preset and band order: 'PATH::sensor=NAME::bands=VV,VH'",
    )
    p.add_argument(
        "--sensor",
        action="append",
        metavar="NAME",
        help="sensor preset: one for all sources, or one per --source in order (auto-detected if omitted)",
    )
    p.add_argument(
        "--bands",
        action="append",
        metavar="B1,B2,...",
        help="comma-separated band order of stacked files (mask bands such as SCL allowed): one for all "
        "sources, or one per --source in order",
    )
    p.add_argument(
        "--datetime", metavar="START/END", help="keep inputs acquired in this window (ISO, '..' open)"
    )
    p.add_argument(
        "--composite",
        choices=["median"],
        help="one row per cell: the per-pixel median of its clear observations (within --datetime)",
    )
    p.add_argument("--stac", metavar="CATALOG_OR_API", help="STAC catalog.json (path or URL) or STAC API URL")
    p.add_argument("--collection", action="append", help="STAC collection id(s) to take items from")
    p.add_argument("--bbox", metavar="W,S,E,N", help="STAC search box in degrees (negative values allowed)")
    p.add_argument("--max-cloud", type=float, metavar="PCT", help="skip STAC items with eo:cloud_cover above")
    p.add_argument("--res", type=int, help="H3 resolution of the chips (default: matches the chip size)")
    p.add_argument("--model", default=None, help="embedder name (default: the shipped default model)")
    p.add_argument(
        "--weights",
        metavar="FILE_OR_NAME",
        help="weights of a pretrained --model (ssl4eo-resnet50, ssl4eo-resnet18, timm:ARCH): a torch "
        "state-dict file, or a published name (e.g. SENTINEL2_ALL_MOCO) found in the local cache",
    )
    p.add_argument(
        "--allow-download",
        action="store_true",
        help="let --weights NAME download the published file once into the local cache",
    )
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
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the embeddings in DB (the old ones stay published until the new ones are)",
    )
    add_writer_arguments(p)
    p.add_argument("--no-index", action="store_true", help="do not build the FAISS index with the embeddings")
    p.add_argument("--device", help="torch device of the model: cpu, cuda, cuda:1 (numpy models: CPU)")
    p.add_argument("--batch-size", type=int, metavar="N", help="chips per model call (256 CPU, 2048 GPU)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local: processes embedding shards (numpy models only; default 1); ray: embedder actors "
        "(default one per GPU, or CPUs / 2)",
    )
    p.add_argument("--list-sensors", action="store_true", help="print the sensor presets and exit")
    add_engine_arguments(p)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--engine``, ``--address``, ``--gpus-per-worker`` (see docs/cluster.md)."""
    g = p.add_argument_group("distributed build (Ray Data; pip install 'earthvec[ray]')")
    g.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this machine (default); ray: a Ray cluster (reads as CPU tasks, embedder actors)",
    )
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="Ray cluster to join (auto, HOST:6379 or ray://HOST:10001; default: start a local one)",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=float,
        metavar="N",
        help="GPUs per embedder actor (default 1 when the cluster has GPUs, else CPU actors)",
    )


def ray_options(args: argparse.Namespace) -> Any:
    """The :class:`~embedder.ray_runner.RayOptions` of the parsed options (None: ``--engine local``)."""
    if args.engine != "ray":
        if args.address or args.gpus_per_worker is not None:
            raise SystemExit("earthvec build: --address and --gpus-per-worker need --engine ray")
        return None
    from embedder.ray_runner import RayOptions

    return RayOptions(address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker)


def add_writer_arguments(p: argparse.ArgumentParser) -> None:
    """``--no-wait``, shared by every command that writes a database."""
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another process is writing DB (default: wait for it, showing who)",
    )


def command_line() -> str:
    """This process's command line (recorded in the lock and the manifest)."""
    import os
    import sys

    return " ".join(["earthvec", *sys.argv[1:]]) if sys.argv else f"earthvec (pid {os.getpid()})"


def index_hook(no_index: bool):  # noqa: ANN201 (index imported lazily)
    """What a build runs before its commit: build the index of the new generation (unless off)."""
    if no_index:
        return None

    def finish(tx) -> None:  # noqa: ANN001
        from index.txindex import index_into

        index_into(tx, progress=True)

    return finish


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
    if not args.db or not (args.source or args.stac):
        raise SystemExit("earthvec build: give a database folder and at least one --source (or --stac)")
    check_options(args)
    cluster = ray_options(args)
    sources = args.source or []
    sensors = args.sensor or []
    bands = [b.split(",") for b in args.bands or []]
    for what, given in (("--sensor", sensors), ("--bands", bands)):
        if len(given) > 1 and len(given) != len(sources):
            raise SystemExit(
                f"earthvec build: give one {what} for all sources or one per --source "
                "(or write it into the source: 'PATH::sensor=NAME::bands=A,B')"
            )

    def pick(values: list[T], i: int) -> T | None:
        return values[i] if len(values) > 1 else (values[0] if values else None)

    check_duplicates(sources, [pick(sensors, i) for i in range(len(sources))],
                     [pick(bands, i) for i in range(len(sources))])
    specs = [SourceSpec([src], pick(sensors, i), pick(bands, i)) for i, src in enumerate(sources)]
    embedder = pretrained_embedder(
        args.model or DEFAULT_MODEL, args.weights, args.allow_download, device=args.device
    )
    if args.stac:
        from embedder.stac import StacQuery, stac_items

        query = StacQuery(
            args.stac,
            collections=args.collection,
            bbox=parse_bbox(args.bbox) if args.bbox else None,
            datetime=args.datetime,
            max_cloud=args.max_cloud,
            sensor=pick(sensors, 0) if not sources else None,
        )
        specs.append(SourceSpec([], items=stac_items(query)))
    report = build_db(
        args.db,
        specs,
        res=args.res,
        model=args.model or DEFAULT_MODEL,
        mode=args.mode,
        min_valid=args.min_valid,
        skip_empty=args.skip_empty,
        overwrite=args.overwrite,
        datetime_window=args.datetime,
        embedder=embedder,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers or 1,
        wait=not args.no_wait,
        command=command_line(),
        finish=index_hook(args.no_index),
        composite=args.composite,
        engine=args.engine,
        ray=cluster,
    )
    print(
        f"built {args.db}: {report.rows_written} rows written in {report.shards_written} shard(s), "
        f"{report.shards_skipped} shard(s) already done, {report.rows_dropped_empty} empty chip(s) dropped, "
        f"{report.rows_dropped_low_valid} below --min-valid {args.min_valid:g} dropped, "
        f"{report.items_outside_datetime} input(s) outside --datetime; "
        f"model {report.model}, H3 res {report.resolution}; {report.seconds:.1f} s "
        f"({report.rows_per_second:.0f} rows/s); published generation {report.generation} "
        f"({report.rows_total} rows)"
    )
    return 0


def pretrained_embedder(
    model: str, weights: str | None, allow_download: bool, **options: Any
) -> Embedder | None:
    """The embedder with ``--weights`` loaded, or None when no weights were given (the registry default).

    ``options`` (``device``, ``batch_size``, ``precision`` ...) go to the factory with the weights.

    Raises:
        EarthvecError: ``--weights``/``--allow-download`` given for a model with built-in weights.
    """
    from embedder.errors import EarthvecError
    from embedder.registry import get_embedder, takes_weights

    if not (weights or allow_download):
        return None
    if not takes_weights(model):
        raise EarthvecError(
            f"--model {model} has its weights built in; --weights/--allow-download are for pretrained "
            "models such as --model ssl4eo-resnet50"
        )
    return get_embedder(model, weights=weights, allow_download=allow_download, **options)


def check_options(args: argparse.Namespace) -> None:
    """Refuse options that would fail late or write a useless database, before any work.

    Raises:
        SourceError: ``--res`` outside 0..15 or ``--min-valid`` outside [0, 1).
    """
    from embedder.errors import SourceError

    if args.res is not None and not 0 <= args.res <= 15:
        raise SourceError(f"--res {args.res} is not an H3 resolution; use 0..15 (or leave it out)")
    if not 0.0 <= args.min_valid < 1.0:
        raise SourceError(
            f"--min-valid {args.min_valid:g} is a share of valid pixels; give a number in [0, 1) "
            "(0.5 drops chips that are half nodata or more)"
        )


def check_duplicates(sources: list[str], sensors: list[str | None], bands: list[list[str] | None]) -> None:
    """Refuse a file that two ``--source`` options give with the same sensor and bands.

    (Its chips would be two rows of one cell and time.) The same file read with other
    options (another preset or band selection) is allowed.

    Raises:
        SourceError: naming the file and both ``--source`` values.
    """
    import os

    from embedder.errors import SourceError
    from embedder.sources import is_url, parse_source, resolve_sources

    seen: dict[tuple[str, str], str] = {}
    for src, sensor, band in zip(sources, sensors, bands, strict=True):
        path, opts = parse_source(src)
        how = repr((opts.get("sensor", sensor), opts.get("bands", ",".join(band) if band else None)))
        for f in resolve_sources([path]):
            key = (f if is_url(f) else os.path.realpath(f), how)
            if key in seen:
                raise SourceError(
                    f"{f} is given twice (by --source {seen[key]} and --source {src}); give each file "
                    "once: drop or narrow one of the --source options"
                )
            seen[key] = src


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``W,S,E,N`` in degrees.

    Raises:
        SourceError: when it is not four numbers with W<E... (antimeridian boxes may have W>E).
    """
    from embedder.errors import SourceError

    try:
        w, so, e, n = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise SourceError(f"--bbox {text!r} is not W,S,E,N; write e.g. --bbox=-9.5,36,3.5,44") from exc
    if not (-90 <= so < n <= 90 and -180 <= w <= 180 and -180 <= e <= 180):
        raise SourceError(f"--bbox {text!r} is out of range; write W,S,E,N in degrees, S < N")
    return w, so, e, n

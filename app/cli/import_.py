"""``earthvec import DB --from PRODUCT PATH [PATH ...] [--res R] [--year Y] [--version V]``."""

from __future__ import annotations

import argparse

from app.cli.build import add_writer_arguments

HELP = "Import another product's embeddings (Satellite Embedding, TESSERA, Major TOM, Clay, ...)."
PRODUCTS = ("satellite-embedding", "tessera", "majortom", "clay", "earthindex")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec import``."""
    p.add_argument("db", help="database folder to write (one product version per database)")
    p.add_argument(
        "--from", dest="product", required=True, choices=PRODUCTS, help="the product the files come from"
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="product files, folders or globs ('**' allowed)")
    p.add_argument(
        "--res",
        type=int,
        help="H3 resolution of the rows (pixel products: default 8, pixels pooled per cell; "
        "chip products: default the resolution matching the chip size)",
    )
    p.add_argument("--year", type=int, help="year of annual pixel products when the paths do not say it")
    p.add_argument("--version", help="product version when the files do not say it (e.g. Core-S2L1C-SSL4EO)")
    p.add_argument(
        "--spread",
        action="store_true",
        help="also store each row's spread: 1 - |mean of its unit pixel (chip) vectors|",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the embeddings in DB (the old ones stay published until the new ones are)",
    )
    add_writer_arguments(p)
    p.add_argument("--no-index", action="store_true", help="do not build the FAISS index with the rows")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    """Import and print what was written."""
    import json

    from app.cli.build import command_line, index_hook
    from embedder.importers import import_product

    r = import_product(
        args.db,
        args.product,
        args.paths,
        res=args.res,
        year=args.year,
        version=args.version,
        spread=args.spread,
        overwrite=args.overwrite,
        progress=True,
        wait=not args.no_wait,
        command=command_line(),
        finish=index_hook(args.no_index),
    )
    if args.format == "json":
        print(json.dumps(r.to_dict(), indent=1))
        return 0
    read = f"{r.pixels_valid} valid of {r.pixels_read} pixels" if r.pixels_read else f"{r.chips_read} chips"
    print(f"imported {r.model} from {r.files} file(s) ({read}, years {r.years or '-'})")
    print(
        f"wrote {r.rows_written} of {r.rows} rows at H3 res {r.resolution} into {r.db}: "
        f"{r.partitions_written} partition(s) written, {r.partitions_skipped} already there, "
        f"{r.seconds:.1f} s"
    )
    return 0

"""``earthvec export DB --stac OUT_DIR``: GeoParquet 1.1 + STAC (Embedding extension) for other tools."""

from __future__ import annotations

import argparse

HELP = "Export a database as GeoParquet with an emb block and a STAC catalogue (Embedding extension)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec export``."""
    p.add_argument("db", help="database folder")
    p.add_argument(
        "--stac",
        required=True,
        metavar="OUT_DIR",
        help="output folder: collection.json, one item per H3 partition, data/<partition>.parquet",
    )
    p.add_argument("--collection-id", help="STAC collection id (default: the database folder's name)")
    p.add_argument("--no-validate", action="store_true", help="skip validating the STAC JSON with pystac")


def run(args: argparse.Namespace) -> int:
    """Export, validate and print what was written."""
    from index.stac_export import export_stac, validate_export

    r = export_stac(args.db, args.stac, collection_id=args.collection_id)
    print(f"wrote {r.rows} rows in {len(r.files)} GeoParquet file(s) under {r.out / 'data'}")
    print(f"wrote STAC collection {r.collection} with {r.items} item(s)")
    if not args.no_validate:
        n = validate_export(r.out)
        print(f"validated {n} STAC object(s) with pystac (core schemas and the emb extension)")
    return 0

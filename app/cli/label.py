"""``earthvec label DB --seeds FILE [-k K] --out FILE.parquet [--geotiff FILE.tif]``: kNN labelling."""

from __future__ import annotations

import argparse

HELP = "kNN land-cover labelling of every cell from a few seed labels."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec label``."""
    from app.cli.similar import add_filter_arguments

    p.add_argument("db", help="database folder (built by earthvec build)")
    p.add_argument(
        "--seeds",
        required=True,
        help="CSV with lat,lon,label or h3,label columns, or GeoJSON points with a 'label'",
    )
    p.add_argument("-k", type=int, default=5, help="neighbours per vote (default 5)")
    p.add_argument(
        "--out", required=True, help="output GeoParquet (h3, lat, lon, geometry, label, confidence)"
    )
    p.add_argument(
        "--geotiff",
        help="also write the map as an EPSG:4326 GeoTIFF of class codes (names in its tags)",
    )
    p.add_argument(
        "--geotiff-res",
        type=float,
        default=0.25,
        help="GeoTIFF pixel size in degrees (default 0.25)",
    )
    p.add_argument(
        "--block-res",
        type=int,
        help="H3 resolution of the spatial CV blocks (default: database resolution - 4)",
    )
    p.add_argument("--folds", type=int, default=5, help="spatial cross-validation folds (default 5)")
    add_filter_arguments(p)
    p.add_argument("--rebuild-index", action="store_true", help="rebuild the FAISS index first")
    from app.cli.build import add_writer_arguments

    add_writer_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Label the database, print CV accuracy and class counts."""
    from app.cli.similar import filter_from_args
    from embedder.errors import SeedError
    from index.label import label_db
    from index.store import open_index

    if not str(args.out).endswith(".parquet"):
        raise SeedError(f"--out {args.out}: the map is GeoParquet; give a path ending in .parquet")
    geotiff = getattr(args, "geotiff", None)
    if geotiff and not str(geotiff).lower().endswith((".tif", ".tiff")):
        raise SeedError(f"--geotiff {geotiff}: give a path ending in .tif or .tiff")
    if args.folds < 2:
        raise SeedError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    flt = filter_from_args(args)
    vi = open_index(args.db, rebuild=True if args.rebuild_index else None, progress=True)
    r = label_db(
        vi,
        args.seeds,
        k=args.k,
        out=args.out,
        block_res=args.block_res,
        n_folds=args.folds,
        flt=None if flt.empty else flt,
        progress=True,
        wait=not getattr(args, "no_wait", False),
    )
    s = r.seeds
    print(
        f"seeds: {len(s.cells)} used of {s.n_read} read "
        f"({s.n_outside} outside the database, {s.n_duplicate} in an already seeded cell)"
    )
    cv = r.cv
    if cv.accuracy is None:
        print(f"spatial cross-validation: not possible: {cv.message}")
    else:
        print(
            f"spatial cross-validation accuracy (k={r.k}): {cv.accuracy:.3f} "
            f"over {cv.n_folds} folds "
            f"of {cv.n_blocks} blocks (H3 res {cv.block_resolution} parents); chance "
            f"{max(s.class_counts().values()) / len(s.cells):.3f}"
        )
        if cv.message:
            print(f"note: {cv.message}")
    print(f"{'class':24s} {'seeds':>7s} {'predicted cells':>16s}")
    seeds = s.class_counts()
    for name in sorted(r.predicted_counts):
        print(f"{name:24s} {seeds.get(name, 0):7d} {r.predicted_counts[name]:16d}")
    print(f"wrote {r.n_cells} cells to {r.out} (copy: {r.copy})")
    if geotiff:
        from index.export import prediction_geotiff

        g = prediction_geotiff(r.out or args.out, geotiff, resolution_deg=getattr(args, "geotiff_res", 0.25))
        print(
            f"wrote GeoTIFF {g.path}: {g.width}x{g.height} px at {getattr(args, 'geotiff_res', 0.25)} deg, "
            f"bounds {g.bounds}, {g.pixels_labelled} labelled px, {len(g.classes)} classes"
        )
    return 0

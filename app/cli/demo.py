"""``earthvec demo``: build the demo database from ``data/``, show results, serve the explorer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HELP = "Build the demo databases from data/ and print example results."

DEMO_RES = 8


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec demo``."""
    p.add_argument("--db", default="demo_db", help="folder for the demo databases (default demo_db)")
    p.add_argument(
        "--data", default=None, help="folder of the shipped sample data (default $EARTHVEC_DATA or data/)"
    )
    p.add_argument("--model", default=None, help="embedder name (default: the shipped default model)")
    p.add_argument("--port", type=int, default=8501, help="explorer port")
    p.add_argument("--host", default="127.0.0.1", help="explorer address (default 127.0.0.1: this machine)")
    p.add_argument("--no-serve", action="store_true", help="stop after printing (same as DEMO_SERVE=0)")
    p.add_argument(
        "--global-res",
        type=int,
        default=5,
        help="H3 resolution of the global database (5: ~615k land cells; 4: ~94k)",
    )
    p.add_argument("--no-global", action="store_true", help="skip the global database")
    p.add_argument("--global-seeds", type=int, default=300, help="random MODIS seed cells for the global map")


def build_demo(root: Path, data: Path, model: str) -> Path:
    """Build the multi-sensor demo database (EuroSAT, BigEarthNet S1+S2, Landsat-8) at res 8."""
    from embedder.build import SourceSpec, build_db

    db = root / "eurosat"
    sources = [
        SourceSpec([str(data / "eurosat_ms" / "tif" / "**" / "*.tif")], "sentinel2-l1c-eurosat"),
        SourceSpec([str(data / "bigearthnet_s1s2" / "S2" / "**" / "*.tif")], "sentinel2-l2a-bigearthnet"),
        SourceSpec([str(data / "bigearthnet_s1s2" / "S1" / "**" / "*.tif")], "sentinel1-grd"),
        SourceSpec([str(data / "landsat8" / "l8_B*.tif")], "landsat8-l1"),
    ]
    from app.cli.build import index_hook

    report = build_db(
        db, sources, res=DEMO_RES, model=model, command="earthvec demo", finish=index_hook(False)
    )
    print(
        f"[1/6] built {db}: {report.rows_written} new rows ({report.shards_skipped} shards already done), "
        f"model {report.model}, {report.seconds:.1f} s"
    )
    return db


def show_similar(db: Path, data: Path) -> None:
    """Print the places most similar to one EuroSAT forest chip, with their true classes."""
    import pandas as pd

    from index.search import similar

    seeds = pd.read_csv(data / "eurosat_ms" / "seeds.csv")
    query = seeds[seeds.label == "Forest"].iloc[0]
    res = similar(db, lat=float(query.lat), lon=float(query.lon), k=5)
    import h3.api.basic_int as h3i

    truth = {h3i.latlng_to_cell(r.lat, r.lon, DEMO_RES): r.label for r in seeds.itertuples()}
    res["true_class"] = [truth.get(h3i.str_to_int(c), "-") for c in res["h3"]]
    print(f"[2/6] places most similar to a Forest chip at ({query.lat:.4f}, {query.lon:.4f}):")
    print(res[["rank", "h3", "lat", "lon", "score", "true_class"]].to_string(index=False))


def show_label(db: Path, data: Path) -> None:
    """Label every cell from the EuroSAT seed labels and print the summary."""
    from embedder import contract
    from index.label import label_db

    out = contract.prediction_path(db, "eurosat_knn")
    r = label_db(db, data / "eurosat_ms" / "seeds.csv", k=5, out=out)
    acc = "n/a" if r.cv.accuracy is None else f"{r.cv.accuracy:.3f}"
    print(
        f"[3/6] kNN labelling (k=5) from {len(r.seeds.cells)} seeds: spatially blocked "
        f"{r.cv.n_folds}-fold CV accuracy {acc} over {r.cv.n_blocks} blocks (H3 res "
        f"{r.cv.block_resolution}); {r.n_cells} cells labelled -> {out}"
    )
    top = sorted(r.predicted_counts.items(), key=lambda kv: -kv[1])
    print("      predicted cells per class: " + ", ".join(f"{k} {v}" for k, v in top))


SAHEL = (14.5, 2.0)  # a cell in the Sahel (Niger), for the worldwide similar-places example
FAR_KM = 2000


def build_global(root: Path, data: Path, model: str, res: int) -> Path:
    """Build the global multimodal database (Blue Marble, ETOPO, Koppen) with MODIS labels."""
    from embedder.globe.build import build_global_db

    db = root / "global"
    from app.cli.build import index_hook

    report = build_global_db(
        db, res=res, model=model, root=data / "global", command="earthvec demo", finish=index_hook(False)
    )
    print(
        f"[4/6] built {db}: {report.rows_written} new land cells at H3 res {res} "
        f"({report.shards_skipped} shards already done), model {report.model}, {report.seconds:.1f} s"
    )
    return db


ELSEWHERE = {  # regions searched on their own (bbox filter) for the Sahel example
    "Australia": (110.0, -45.0, 155.0, -10.0),
    "South Asia": (60.0, 5.0, 95.0, 35.0),
    "the Americas": (-120.0, -40.0, -30.0, 35.0),
}


def sahel_matches(db: Path, far_top: int = 3, per_region: int = 2) -> pd.DataFrame:
    """Cells most similar to the Sahel cell: the best more than ``FAR_KM`` away, and per region.

    Returns:
        The :func:`index.search.similar` columns plus ``where`` and ``km`` (from the query).
    """
    import pandas as pd

    from index.filters import Filter
    from index.search import haversine_km, similar

    res = similar(db, lat=SAHEL[0], lon=SAHEL[1], k=2000)
    far = res[haversine_km(SAHEL[0], SAHEL[1], res["lat"].to_numpy(), res["lon"].to_numpy()) > FAR_KM]
    parts = [far.head(far_top).assign(where=f"> {FAR_KM} km")]
    for name, bbox in ELSEWHERE.items():
        hits = similar(db, lat=SAHEL[0], lon=SAHEL[1], k=per_region, flt=Filter(bbox=bbox))
        parts.append(hits.assign(where=name))
    out = pd.concat(parts, ignore_index=True)
    out["km"] = haversine_km(SAHEL[0], SAHEL[1], out["lat"].to_numpy(), out["lon"].to_numpy()).round()
    return out


def show_global_similar(db: Path) -> None:
    """Print the cells most similar to a Sahel cell: far away, and on other continents."""
    out = sahel_matches(db)
    print(f"[5/6] places most similar to the Sahel cell at {SAHEL}, far away and on other continents:")
    print(out[["where", "rank", "h3", "lat", "lon", "km", "score"]].to_string(index=False))


def show_global_label(db: Path, n_seeds: int) -> None:
    """Map land cover worldwide from a few hundred random MODIS seed cells; score against MODIS."""
    import numpy as np
    import pyarrow.parquet as pq

    from embedder import contract
    from embedder.globe.labels import labels_path
    from index.label import label_db

    labels = pq.read_table(labels_path(db)).to_pandas()
    rng = np.random.default_rng(0)
    seeds = labels.iloc[rng.choice(len(labels), size=min(n_seeds, len(labels)), replace=False)]
    seeds_csv = db / "modis_seeds.csv"
    seeds.assign(h3=[f"{int(c):x}" for c in seeds["h3"]])[["h3", "label_name"]].rename(
        columns={"label_name": "label"}
    ).to_csv(seeds_csv, index=False)
    out = contract.prediction_path(db, "landcover_knn")
    r = label_db(db, seeds_csv, k=5, out=out)
    pred = pq.read_table(out, columns=["h3", "label"]).to_pandas()
    truth = labels.set_index("h3")["label_name"]
    agree = float((pred["label"].to_numpy() == truth.reindex(pred["h3"].to_numpy()).to_numpy()).mean())
    acc = "n/a" if r.cv.accuracy is None else f"{r.cv.accuracy:.3f}"
    print(
        f"[6/6] global land-cover map from {len(r.seeds.cells)} random MODIS seed cells (k=5): "
        f"{r.n_cells} cells labelled, agreement with MODIS {agree:.3f}, spatially blocked CV {acc} -> {out}"
    )


def run(args: argparse.Namespace) -> int:
    """Build, print the two example results, then serve unless told not to."""
    import os

    from embedder.datapath import DATA_ENV, data_dir
    from embedder.errors import InputNotFoundError
    from embedder.registry import DEFAULT_MODEL

    root, data = Path(args.db), data_dir(args.data)
    if not (data / "eurosat_ms").is_dir():
        raise InputNotFoundError(
            f"no EuroSAT sample data under {data}/eurosat_ms; pass --data DIR or set {DATA_ENV}=DIR "
            "(the checkout's data/ folder)"
        )
    db = build_demo(root, data, args.model or DEFAULT_MODEL)
    show_similar(db, data)
    show_label(db, data)
    if not args.no_global:
        gdb = build_global(root, data, args.model or DEFAULT_MODEL, args.global_res)
        show_global_similar(gdb)
        show_global_label(gdb, args.global_seeds)
    if args.no_serve or os.environ.get("DEMO_SERVE", "1") == "0":
        return 0
    from app.cli import explore

    ns = argparse.Namespace(db=str(root), port=args.port, host=args.host, browser=False,
                            max_upload_mb=explore.MAX_UPLOAD_MB)
    return explore.run(ns)

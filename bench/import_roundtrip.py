"""Import round trip: product-layout files made from real earthvec vectors, imported, compared with them.

Run from the repository root::

    python -m bench.import_roundtrip [--out bench_results/import_roundtrip.json] [--quick]

For each product layout (see :mod:`bench.product_layouts`): take the native earthvec-tex
database (the Landsat-8 scene at H3 res 8 for pixel products, the 369 EuroSAT chips at res 8
for chip products), project its vectors to the product's dimension (fixed orthonormal
matrix; the *reference* vectors), write them in the product's layout, ``earthvec import``
the files, then measure against the reference:

* rows matched (same H3 cell) and the smallest cosine between imported and reference vectors;
* recall@10: for every matched cell, the overlap of its 10 nearest cells in the imported
  database (``index.search.similar_batch``, the product path) with its 10 nearest among the
  reference vectors (numpy, exact);
* label: ``index.label.label_db`` on the imported database and on the reference vectors
  written as an earthvec database, same seeds (EuroSAT labels for chips; MODIS IGBP 2019
  classes at every 4th cell for the Landsat scene): spatially blocked CV accuracy of both
  and the share of cells whose predicted class agrees.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio

from bench import product_layouts as pl
from embedder import contract, h3grid

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
L8_BOX = (-87.49, 30.65, -87.31, 30.805)
"""Inside the Landsat-8 scene (lon/lat): where the pixel-product files lie."""
L8_EPSG = 32616
TESSERA_TILES = ((-87.45, 30.75), (-87.35, 30.75))


@dataclass
class Native:
    """A native database and its vectors sorted by cell."""

    db: Path
    cells: np.ndarray
    vectors: np.ndarray
    files: list[str]


def build_natives(work: Path) -> tuple[Native, Native]:
    """The earthvec-tex databases of the Landsat-8 scene and of the EuroSAT chips (H3 res 8)."""
    from embedder.build import build_db

    out = []
    for name, src, kw in (
        ("native_l8", [str(DATA / "landsat8" / "l8_B*.tif")], {}),
        (
            "native_eurosat",
            [str(DATA / "eurosat_ms" / "tif" / "**" / "*.tif")],
            {"sensor": "sentinel2-l1c-eurosat"},
        ),
    ):
        db = work / name
        if not contract.embeddings_dir(db).is_dir():
            build_db(db, src, res=8, model="earthvec-tex", **kw)
        out.append(read_native(db))
    return out[0], out[1]


def read_native(db: Path) -> Native:
    """A database's cells, vectors and first source file, sorted by cell."""
    t = contract.read_table(db, columns=[contract.H3, contract.SOURCE, contract.EMBEDDING])
    cells = np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64)
    order = np.argsort(cells)
    files = [s[0] for s in t.column(contract.SOURCE).to_pylist()]
    return Native(db, cells[order], contract.embeddings_matrix(t)[order], [files[i] for i in order])


def write_reference_db(native: Native, out: Path, vectors: np.ndarray, name: str, keep: np.ndarray) -> Path:
    """The reference vectors of the cells ``keep`` (those the import holds) as an earthvec database."""
    meta = contract.read_meta(native.db)
    sel = np.isin(native.cells, keep)
    files = [f for f, k in zip(native.files, sel.tolist(), strict=True) if k]
    native = Native(native.db, native.cells[sel], native.vectors[sel], files)
    vectors = vectors[sel]
    ref = contract.DatasetMeta(name, meta.model_version, vectors.shape[1], meta.h3_resolution,
                               meta.partition_resolution)  # fmt: skip
    lat, lon = h3grid.cell_centres(native.cells)
    n = len(native.cells)
    table = contract.make_table(
        h3=native.cells, lat=lat, lon=lon, geometry=h3grid.cells_wkb(native.cells), datetime_=[None] * n,
        source=[[f] for f in native.files], modalities=[["optical"]] * n, sensors=[["reference"]] * n,
        valid_fraction=np.ones(n, dtype=np.float32), embedding=vectors, meta=ref,
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    parents = h3grid.cell_parents(native.cells, ref.partition_resolution)
    for p in np.unique(parents).tolist():
        part = table.filter(pa.array(parents == p))
        contract.write_table_atomic(part, contract.shard_path(out, h3grid.cell_to_str(p), "reference"))
    return out


def modis_seeds(native: Native, path: Path, every: int = 4) -> Path:
    """Seeds ``h3,label``: the MODIS IGBP 2019 class at every ``every``-th cell centre."""
    lat, lon = h3grid.cell_centres(native.cells[::every])
    tif = next((DATA / "global").glob("MCD12C1*.tif"))
    with rasterio.open(tif) as src:
        codes = [int(v[0]) for v in src.sample(zip(lon.tolist(), lat.tolist(), strict=True))]
    pd.DataFrame({"h3": [h3grid.cell_to_str(c) for c in native.cells[::every]],
                  "label": [f"igbp-{c}" for c in codes]}).to_csv(path, index=False)  # fmt: skip
    return path


def exact_top10(vectors: np.ndarray) -> np.ndarray:
    """Row numbers of every row's 10 most similar other rows (numpy, exact)."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :10]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of row-wise common entries of two (n, 10) neighbour tables."""
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), b.tolist(), strict=True)]))


def recall_at_10(db: Path, ref_cells: np.ndarray, ref_vectors: np.ndarray) -> tuple[float, int, float]:
    """Mean recall@10 of the imported database against the reference, rows matched, smallest cosine."""
    from index.search import similar_batch

    t = contract.read_table(db, columns=[contract.H3, contract.EMBEDDING])
    cells = np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64)
    vecs = contract.embeddings_matrix(t)
    pos = np.minimum(np.searchsorted(ref_cells, cells), len(ref_cells) - 1)
    ok = ref_cells[pos] == cells
    min_cos = float(np.min(np.sum(vecs[ok] * ref_vectors[pos[ok]], axis=1))) if ok.any() else float("nan")
    common = np.sort(cells[ok])
    truth = exact_top10(ref_vectors[np.searchsorted(ref_cells, common)])
    hits = similar_batch(db, [int(c) for c in common], k=10)
    got: dict[int, set[int]] = {}
    for q, h in zip(hits["query"].tolist(), hits["h3"].tolist(), strict=True):
        got.setdefault(int(q), set()).add(int(h3grid.parse_cell(h)))
    rec = [len(got.get(i, set()) & {int(common[j]) for j in truth[i]}) / 10 for i in range(len(common))]
    return float(np.mean(rec)), int(ok.sum()), min_cos


def label_agreement(db: Path, ref_db: Path, seeds: Path, work: Path) -> dict[str, Any]:
    """CV accuracy of both databases on the same seeds and the share of cells predicted alike."""
    from index.label import label_db

    ra = label_db(ref_db, seeds, k=5, out=work / "ref_map.parquet")
    rb = label_db(db, seeds, k=5, out=work / "imp_map.parquet")
    a = pq.read_table(work / "ref_map.parquet", columns=["h3", "label"]).to_pandas().set_index("h3")
    b = pq.read_table(work / "imp_map.parquet", columns=["h3", "label"]).to_pandas().set_index("h3")
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_ref", "_imp"))
    return {
        "cv_reference": ra.cv.accuracy, "cv_imported": rb.cv.accuracy,
        "map_agreement": float((both["label_ref"] == both["label_imp"]).mean()), "map_cells": len(both),
    }  # fmt: skip


Writer = Callable[[Path, np.ndarray], list[Path]]


@dataclass
class Layout:
    """One product layout to check."""

    label: str
    product: str
    dim: int
    native: Native
    writer: Writer
    quantiser: str = "float"
    options: dict[str, Any] | None = None


def layouts(l8: Native, eu: Native, quick: bool) -> list[Layout]:
    """The layouts: writer(folder, reference vectors) -> files, and how the layout quantises."""

    def aef(bottom_up: bool) -> Writer:
        def w(d: Path, ref: np.ndarray) -> list[Path]:
            f = (
                d
                / "satellite_embedding"
                / "v1"
                / "annual"
                / "2015"
                / "16N"
                / "xl8scene-0000000000-0000000000.tiff"
            )
            return [pl.write_aef_cog(f, pl.Field(l8.cells, ref, 8), L8_BOX, L8_EPSG, bottom_up=bottom_up)]

        return w

    def ee(d: Path, ref: np.ndarray) -> list[Path]:
        box = (-87.46, 30.68, -87.38, 30.76) if quick else L8_BOX
        return [pl.write_ee_export(d / "aef_export_2015.tif", pl.Field(l8.cells, ref, 8), box, 10 / 111_320)]

    def tess_npy(d: Path, ref: np.ndarray) -> list[Path]:
        return [
            pl.write_tessera_npy(d, lon, lat, 2015, pl.Field(l8.cells, ref, 8)) for lon, lat in TESSERA_TILES
        ]

    def tess_tif(d: Path, ref: np.ndarray) -> list[Path]:
        lon, lat = TESSERA_TILES[0]
        return [pl.write_tessera_geotiff(d, lon, lat, 2015, pl.Field(l8.cells, ref, 8))]

    def chips(writer: Callable[..., list[Path]], **kw: Any) -> Writer:
        def w(d: Path, ref: np.ndarray) -> list[Path]:
            fp, lat, lon = pl.chip_footprints(eu.files)
            return writer(d, pl.Chips(fp, lat, lon, eu.files, ref), **kw)

        return w

    out = [
        Layout("Satellite Embedding COG (int8, UTM 10 m)", "satellite-embedding", 64, l8, aef(False), "aef"),
        Layout("Satellite Embedding COG, bottom-up", "satellite-embedding", 64, l8, aef(True), "aef"),
        Layout("Satellite Embedding EE export (float, EPSG:4326)", "satellite-embedding", 64, l8, ee, "float",
               {"year": 2015}),
        Layout("TESSERA NPY + scales + landmask (2 tiles)", "tessera", 128, l8, tess_npy, "tessera"),
        Layout("TESSERA GeoTIFF export (float, 1 tile)", "tessera", 128, l8, tess_tif, "tessera-tiff"),
        Layout("Major TOM shards (2048-d)", "majortom", 2048, eu, chips(pl.write_majortom)),
        Layout("Clay GeoParquet (768-d)", "clay", 768, eu, chips(pl.write_clay)),
        Layout("Earth Index GeoParquet + emb (384-d)", "earthindex", 384, eu,
               chips(pl.write_earthindex, model_id="earthvec-tex-proj384", model_version="1")),
    ]  # fmt: skip
    return out[:1] + out[3:4] + out[5:6] if quick else out


def run(work: Path, quick: bool = False) -> list[dict[str, Any]]:
    """Measure every layout; returns one dict per layout (also the JSON rows)."""
    from embedder.importers import import_product

    work.mkdir(parents=True, exist_ok=True)
    l8, eu = build_natives(work)
    seeds = {l8.db: modis_seeds(l8, work / "l8_seeds.csv"), eu.db: DATA / "eurosat_ms" / "seeds.csv"}
    rows = []
    for i, lay in enumerate(layouts(l8, eu, quick)):
        case, native = work / f"case{i}", lay.native
        shutil.rmtree(case, ignore_errors=True)
        ref = pl.unit(native.vectors @ pl.projection(native.vectors.shape[1], lay.dim))
        files = lay.writer(case / "files", ref)
        t0 = time.perf_counter()
        rep = import_product(case / "db", lay.product, [str(case / "files")], res=8, **(lay.options or {}))
        seconds = time.perf_counter() - t0
        recall, matched, min_cos = recall_at_10(case / "db", native.cells, ref)
        imported = np.sort(contract.read_table(case / "db", columns=[contract.H3]).column(0).to_numpy())
        sel = np.searchsorted(native.cells, imported)
        oracle = overlap(exact_top10(ref[sel]), exact_top10(pl.dequantised(lay.quantiser, ref)[sel]))
        ref_db = write_reference_db(native, case / "reference_db", ref, f"reference-{lay.dim}", imported)
        lab = label_agreement(case / "db", ref_db, seeds[native.db], case)
        rows.append({
            "layout": lay.label, "model": rep.model, "files": len(files), "rows_native": len(native.cells),
            "rows_imported": rep.rows_written, "rows_matched": matched, "min_cosine": round(min_cos, 6),
            "recall_at_10": round(recall, 4), "recall_at_10_quantisation_only": round(oracle, 4),
            "import_seconds": round(seconds, 1),
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in lab.items()},
        })  # fmt: skip
        shutil.rmtree(case / "files", ignore_errors=True)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The round-trip table."""
    head = ("| layout | model | rows native / imported / matched | min cos | recall@10 (quantisation only) | "
            "CV acc ref / imp | map agreement | import s |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    body = [
        f"| {r['layout']} | {r['model']} | {r['rows_native']} / {r['rows_imported']} / {r['rows_matched']} | "
        f"{r['min_cosine']:.5f} | {r['recall_at_10']:.3f} ({r['recall_at_10_quantisation_only']:.3f}) | "
        f"{r['cv_reference']:.3f} / {r['cv_imported']:.3f} | "
        f"{r['map_agreement']:.3f} ({r['map_cells']}) | {r['import_seconds']} |"
        for r in rows
    ]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    """Run and print the table; write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--work", default="bench_results/import_roundtrip", help="working folder (kept)")
    p.add_argument("--out", default="bench_results/import_roundtrip.json", help="JSON report")
    p.add_argument("--quick", action="store_true", help="three layouts only")
    a = p.parse_args(argv)
    rows = run(Path(a.work), quick=a.quick)
    print(markdown(rows))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

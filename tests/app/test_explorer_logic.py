"""The explorer's plain logic: H3 parents, colours, thumbnails, exports, labelling, SQL limits."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest
import rasterio

from app.logic import export
from app.logic.colour import pca_rgb, ramp
from app.logic.console import run_console_query
from app.logic.exact import exact_top_k
from app.logic.mapview import fit_view
from app.logic.predict import predict_rows, suggest_next
from app.logic.rows import load_rows
from app.logic.thumbnails import rgb_bands, true_colour
from embedder.errors import QueryError, SeedError
from embedder.h3grid import cell_parents as parent_ids
from embedder.sensors import get_sensor
from index.cv import learning_curve
from index.sql import connect

ROOT = Path(__file__).resolve().parents[2]


def test_parent_ids_match_h3(explorer_db: Path) -> None:
    rows = load_rows(explorer_db)
    for res in range(rows.resolution + 1):
        want = [h3i.cell_to_parent(int(c), res) for c in rows.h3]
        assert parent_ids(rows.h3, res).tolist() == want
    with pytest.raises(QueryError):
        parent_ids(rows.h3, 16)


def test_exact_top_k_matches_sorting(explorer_db: Path) -> None:
    rows = load_rows(explorer_db)
    q = rows.vectors[7]
    top, scores = exact_top_k(rows.vectors, q, 15)
    full = rows.vectors @ q
    assert top[0] == 7 and list(top) == list(np.argsort(-full, kind="stable")[:15])
    np.testing.assert_allclose(scores, np.sort(full)[::-1][:15], rtol=1e-6)


def test_pca_colours_follow_the_first_component(explorer_db: Path) -> None:
    rows = load_rows(explorer_db)
    rgb = pca_rgb(rows.vectors)
    assert rgb.shape == (369, 3) and rgb.dtype == np.uint8
    # oracle: leading eigenvector of the covariance matrix (eigh, not the SVD the app uses)
    x = rows.vectors.astype(np.float64) - rows.vectors.mean(axis=0)
    w, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    pc1 = x @ vecs[:, np.argmax(w)]
    rho = pd.Series(rgb[:, 0].astype(float)).corr(pd.Series(np.abs(pc1)), method="spearman")
    rho_signed = abs(pd.Series(rgb[:, 0].astype(float)).corr(pd.Series(pc1), method="spearman"))
    assert max(rho, rho_signed) > 0.95
    assert np.array_equal(pca_rgb(rows.vectors), rgb)  # deterministic


def test_ramp_is_monotone_and_greys_nan() -> None:
    out = ramp(np.array([0.0, 0.5, 1.0, np.nan]))
    lum = out[:3].astype(int).sum(axis=1)
    assert lum[0] < lum[1] < lum[2]
    assert out[3].tolist() == [128, 128, 128]


def test_fit_view_centres_the_points() -> None:
    v = fit_view(np.array([40.0, 60.0]), np.array([-5.0, 25.0]))
    assert v.latitude == 50.0 and v.longitude == 10.0 and 1.0 < v.zoom < 6.0


def test_rgb_bands_come_from_the_sensor_table() -> None:
    assert rgb_bands(get_sensor("sentinel2-l1c-eurosat")) == ["B04", "B03", "B02"]
    assert rgb_bands(get_sensor("landsat8-l1")) == ["B4", "B3", "B2"]
    assert rgb_bands(get_sensor("sentinel1-grd")) is None


def test_true_colour_of_a_eurosat_chip(explorer_db: Path) -> None:
    rows = load_rows(explorer_db)
    r = int(rows.latest[0])
    src = rows.provenance("source", [r])[0]
    img = true_colour(int(rows.h3[r]), src, rows.provenance("sensors", [r])[0])
    assert img is not None and img.shape == (64, 64, 3) and img.dtype == np.uint8
    # oracle: EuroSAT file bands 4, 3, 2 (1-based) are red, green, blue
    with rasterio.open(src[0]) as f:
        raw = f.read([4, 3, 2]).astype(np.float64)
    for c in range(3):
        corr = np.corrcoef(raw[c].ravel(), img[..., c].astype(float).ravel())[0, 1]
        assert corr > 0.95
    assert true_colour(int(rows.h3[r]), ["/nonexistent.tif"], ["sentinel2-l1c-eurosat"]) is None


def test_true_colour_window_of_a_landsat_scene() -> None:
    files = sorted(str(p) for p in (ROOT / "data" / "landsat8").glob("l8_B*.tif"))
    with rasterio.open(files[0]) as f:
        from rasterio.warp import transform

        cx, cy = f.xy(f.height // 2, f.width // 2)
        lon, lat = transform(f.crs, "EPSG:4326", [cx], [cy])
    cell = h3i.latlng_to_cell(lat[0], lon[0], 7)
    img = true_colour(cell, files, ["landsat8-l1"])
    assert img is not None and 20 < img.shape[0] < 128 and img.std() > 5


def test_exports_round_trip(explorer_db: Path, tmp_path: Path) -> None:
    rows = load_rows(explorer_db)
    cells = rows.h3[rows.latest]
    seed_rows = rows.latest[:40]
    names = ["A" if i % 2 else "B" for i in range(40)]
    pred = predict_rows(rows.vectors, rows.latest, seed_rows, names, 3)
    labels = pred.labels().astype(str).tolist()
    gj = json.loads(export.geojson(cells, {"label": labels}))
    assert len(gj["features"]) == 369
    f0 = gj["features"][0]
    ring = f0["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 7 and f0["properties"]["h3"] == format(int(cells[0]), "x")
    (tmp_path / "m.parquet").write_bytes(
        export.geoparquet(cells, {"label": labels, "confidence": pred.confidence})
    )
    import geopandas as gpd

    gdf = gpd.read_parquet(tmp_path / "m.parquet")
    assert len(gdf) == 369 and gdf.crs.to_string() == "OGC:CRS84" and list(gdf["label"]) == labels
    pts = gpd.points_from_xy(gdf["lon"], gdf["lat"])
    assert all(g.contains(p) for g, p in zip(gdf.geometry, pts, strict=True))
    tif = export.geotiff(cells, pred.classes, pred.pred, pred.confidence)
    with rasterio.MemoryFile(io.BytesIO(tif).getvalue()) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == 4326 and ds.count == 2
        cls, conf = ds.read(1), ds.read(2)
        assert json.loads(ds.tags()["classes"]) == pred.classes
        lat, lon = rows.lat[rows.latest], rows.lon[rows.latest]
        r, c = rasterio.transform.rowcol(ds.transform, lon, lat)
        assert np.mean(cls[r, c] == pred.pred + 1) > 0.97  # cells sharing a pixel overwrite
        assert int((cls > 0).sum()) >= 360
        assert conf.max() <= 100


def test_predictions_and_suggestions(explorer_db: Path, eurosat_manifest: pd.DataFrame) -> None:
    rows = load_rows(explorer_db)
    with pytest.raises(SeedError):
        predict_rows(rows.vectors, rows.latest, rows.latest[:3], ["x", "x", "x"], 3)
    seeds = pd.read_csv(ROOT / "data" / "eurosat_ms" / "seeds.csv").groupby("label").head(10)
    cells = np.array([h3i.latlng_to_cell(a, b, rows.resolution) for a, b in
                      zip(seeds["lat"], seeds["lon"], strict=True)], dtype=np.uint64)
    srows = np.array([rows.row_of_cell(int(c)) for c in cells])
    pred = predict_rows(rows.vectors, rows.latest, srows, seeds["label"].tolist(), 5, chunk=50)
    sug = suggest_next(pred, srows, 7)
    assert len(sug) == 7 and not set(sug) & set(srows)
    conf = dict(zip(pred.rows, pred.confidence, strict=True))
    unl = [r for r in pred.rows if r not in set(srows)]
    assert max(conf[r] for r in sug) <= sorted(conf[r] for r in unl)[6] + 1e-6
    curve = learning_curve(cells, rows.vectors[srows], seeds["label"].to_numpy(), k=5, block_res=4)
    assert len(curve) >= 4
    ns = [n for n, _, _ in curve]
    assert ns == sorted(ns) and ns[0] == 2
    assert curve[-1][1] > curve[0][1] + 0.1  # more seeds, better maps
    assert learning_curve(cells[:3], rows.vectors[srows[:3]], np.array(["a", "b", "a"]), k=1,
                          block_res=0) == []


def test_console_query_time_limit(explorer_db: Path) -> None:
    con = connect(explorer_db, read_only=True)
    t, cut = run_console_query(con, "SELECT h3 FROM embeddings", limit=5)
    assert t.num_rows == 5 and cut
    with pytest.raises(QueryError, match="time limit"):
        run_console_query(con, "SELECT count(*) FROM range(100000000000)", timeout_s=0.5)
    t, _ = run_console_query(con, "SELECT count(*) AS n FROM embeddings")  # still usable
    assert t.column("n")[0].as_py() == 369


def test_explore_command_line(explorer_db: Path) -> None:
    import argparse

    from app.cli import explore

    p = argparse.ArgumentParser()
    explore.add_arguments(p)
    args = p.parse_args([str(explorer_db), "--port", "8765"])
    cmd = explore.command(args)
    assert cmd[cmd.index("--server.headless") + 1] == "true"  # never stops at Streamlit's e-mail prompt
    with_browser = explore.command(p.parse_args([str(explorer_db), "--browser"]))
    assert with_browser[with_browser.index("--server.headless") + 1] == "false"
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/streamlit_app.py")
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[-2:] == ["--db", str(explorer_db.resolve())]
    bad = subprocess.run([sys.executable, "-m", "app.cli.main", "explore", "/nonexistent/db"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 1 and "build the database first" in bad.stderr

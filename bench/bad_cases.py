"""The cases of the bad-input table (:mod:`bench.bad_input`), each made from real data.

Every setup takes the shared context (a small real EuroSAT database, its real seeds) and the
case's own folder, writes the bad input there and returns the command's arguments and the
database folder that must stay unchanged (or must not be created).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h3
import numpy as np

from bench import bad_files as bf
from bench.bad_runner import DATA, XFAIL, Case, Ctx

EUROSAT = "sentinel2-l1c-eurosat"
Args = tuple[list[str], Path]
Make = Callable[[Ctx, Path], object]


# ---- earthvec build --------------------------------------------------------------------------


def build(
    make: Make | None, source: str, *extra: str, sensor: str | None = EUROSAT
) -> Callable[[Ctx, Path], Args]:
    """``earthvec build TMP/newdb --source SOURCE`` after ``make`` wrote the bad files."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        if make is not None:
            make(ctx, tmp)
        db = tmp / "newdb"
        opts = ["--sensor", sensor] if sensor else []
        return [
            "--source",
            source.format(tmp=tmp),
            "--model",
            "stats",
            *opts,
            *[e.format(tmp=tmp) for e in extra],
            str(db),
        ], db

    return setup


def into_existing(make: Make) -> Callable[[Ctx, Path], Args]:
    """``earthvec build DB --source TMP/bad.tif`` into a copy of the base database."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        make(ctx, tmp)
        db = ctx.db_copy(tmp)
        return ["--source", str(tmp / "bad.tif"), "--sensor", EUROSAT, "--model", "stats", str(db)], db

    return setup


def chip(ctx: Ctx, i: int = 0) -> Path:
    """A real EuroSAT chip of the base database."""
    return ctx.chips[i]


def rewritten(fn: Callable[[np.ndarray], np.ndarray] | None, **profile: object) -> Make:
    """Writes ``bad.tif``: a real chip with its pixels mapped by ``fn`` and its profile changed."""
    return lambda ctx, tmp: bf.rewrite(chip(ctx), tmp / "bad.tif", fn, **profile)


def _cropped_band(ctx: Ctx, tmp: Path) -> None:
    for p in sorted((DATA / "landsat8").glob("l8_B[2-4].tif")):
        if p.name == "l8_B3.tif":
            bf.crop(p, tmp / p.name, 0.5)
        else:
            shutil.copy(p, tmp)


def _locked_dir(ctx: Ctx, tmp: Path) -> None:
    (tmp / "locked").mkdir()
    shutil.copy(chip(ctx), tmp / "locked")
    os.chmod(tmp / "locked", 0)


def _into_file(ctx: Ctx, tmp: Path) -> Args:
    target = tmp / "not_a_folder"
    shutil.copy(ctx.seeds_csv, target)
    return ["--source", str(chip(ctx)), "--sensor", EUROSAT, "--model", "stats", str(target)], target


# ---- earthvec label --------------------------------------------------------------------------


def label(write: Make, name: str = "seeds.csv", *extra: str) -> Callable[[Ctx, Path], Args]:
    """``earthvec label DB --seeds TMP/NAME --out DB/predictions/map.parquet`` on a copy."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        db = ctx.db_copy(tmp)
        write(ctx, tmp / name)
        return [
            str(db),
            "--seeds",
            str(tmp / name),
            "--out",
            str(db / "predictions" / "map.parquet"),
            *extra,
        ], db

    return setup


def seed_rows(ctx: Ctx) -> list[list[str]]:
    """The real seeds of the base database as ``[lat, lon, label]`` text rows (no header)."""
    return [r.split(",") for r in ctx.seeds_csv.read_text().splitlines()[1:]]


def csv(rows: Callable[[list[list[str]]], list[list[str]]], header: str = "lat,lon,label") -> Make:
    """Writes the real seeds changed by ``rows`` as CSV."""
    return lambda ctx, f: f.write_text(
        "\n".join([header, *(",".join(r) for r in rows(seed_rows(ctx)))]) + "\n"
    )


def _h3_at(res: int) -> Make:
    def write(ctx: Ctx, f: Path) -> None:
        cells = [
            (h3.cell_to_parent(h3.latlng_to_cell(float(a), float(b), 8), res), c)
            for a, b, c in seed_rows(ctx)
        ]
        f.write_text("h3,label\n" + "\n".join(f"{h},{c}" for h, c in cells) + "\n")

    return write


def geojson(geometry: Callable[[float, float], dict[str, object]], cut: int | None = None) -> Make:
    """Writes the real seeds as a GeoJSON FeatureCollection of ``geometry(lon, lat)``."""

    def write(ctx: Ctx, f: Path) -> None:
        feats = [
            {"type": "Feature", "properties": {"label": c}, "geometry": geometry(float(b), float(a))}
            for a, b, c in seed_rows(ctx)
        ]
        text = json.dumps({"type": "FeatureCollection", "features": feats})
        f.write_text(text[:cut] if cut else text)

    return write


def _square(lon: float, lat: float) -> dict[str, object]:
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _million(ctx: Ctx, f: Path) -> None:
    rows = ctx.seeds_csv.read_text().splitlines()
    body = rows[1:] * (1_000_000 // (len(rows) - 1) + 1)
    f.write_text("\n".join([rows[0], *body[:1_000_000]]) + "\n")


# ---- read commands on damaged databases ------------------------------------------------------


def read(
    cmd_args: list[str], damage: Callable[[Ctx, Path], object] | None = None
) -> Callable[[Ctx, Path], Args]:
    """A read command on a copy of the base database, first changed by ``damage``."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        db = ctx.db_copy(tmp)
        if damage is not None:
            damage(ctx, db)
        cell = _first_cell(db)
        coarse = h3.cell_to_parent(cell, 5) if cell != "0" else "0"
        return [str(db), *[a.format(db=db, tmp=tmp, cell=cell, coarse=coarse) for a in cmd_args]], db

    return setup


def _first_cell(db: Path) -> str:
    from embedder import contract

    try:
        return format(int(contract.read_table(db, columns=[contract.H3]).column(contract.H3)[0].as_py()), "x")
    except Exception:  # noqa: BLE001 - a damaged database has no first cell
        return "0"


def _shard(db: Path) -> Path:
    from embedder import contract

    return contract.embedding_files(db)[0]


def _foreign_parquet(ctx: Ctx, db: Path) -> None:
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    pq.write_table(pv.read_csv(ctx.seeds_csv), _shard(db).parent / "zz_foreign.parquet")


def _sidecar_dim(ctx: Ctx, db: Path) -> None:
    """The index's sidecar (kept in the manifest's ``derived.index`` entry) claims another dimension."""
    p = db / "manifest.json"
    doc = json.loads(p.read_text())
    sc = doc["derived"]["index"]["info"]["sidecar"]
    sc["dim"] = int(sc["dim"]) * 2
    p.write_text(json.dumps(doc, indent=1, sort_keys=True))


def _emptied(ctx: Ctx, db: Path) -> None:
    shutil.rmtree(db)
    db.mkdir()


def _no_shards(ctx: Ctx, db: Path) -> None:
    from embedder import contract

    for p in contract.embedding_files(db):
        p.unlink()


# ---- eval with a bad checkpoint --------------------------------------------------------------


def _other_architecture(ctx: Ctx, tmp: Path) -> Path:
    import torch

    from embedder.model.checkpoint import default_checkpoint, weights_hash

    raw = torch.load(default_checkpoint(), map_location="cpu", weights_only=True)
    raw["model_config"] = {**raw["model_config"], "stem_dim": int(raw["model_config"]["stem_dim"]) * 2}
    raw["version"] = weights_hash(raw["model_config"], raw["normalisation"], raw["state_dict"])
    torch.save(raw, tmp / "other.pt")  # a consistent file: another network's config, the real weights
    return tmp / "other.pt"


def _truncated_checkpoint(ctx: Ctx, tmp: Path) -> Path:
    from embedder.model.checkpoint import default_checkpoint

    return bf.truncate(Path(default_checkpoint()), tmp / "cut.pt", 0.5)


def evaluate(make: Callable[[Ctx, Path], Path]) -> Callable[[Ctx, Path], Args]:
    """``earthvec eval --checkpoint FILE --models earthvec-mm --json TMP/out/eval.json``."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        ckpt = make(ctx, tmp)
        return [
            "--checkpoint",
            str(ckpt),
            "--models",
            "earthvec-mm",
            "--json",
            str(tmp / "out" / "e.json"),
        ], tmp / "out"

    return setup


# ---- checks of the cases that must work -------------------------------------------------------


def foreign_reported(db: Path, out: str) -> str | None:
    """``info`` works and names the file that no generation lists (readers ignore it)."""
    return None if "zz_foreign.parquet" in out and "not published" in out else "foreign file not reported"


def base_count(db: Path, out: str) -> str | None:
    """SQL counts the published rows only (a foreign file dropped in is not read)."""
    from embedder import contract

    n = contract.read_table(db, columns=[contract.H3]).num_rows
    return None if str(n) in out.split() else f"expected {n} rows in {out!r}"


def rows_built(db: Path, out: str) -> str | None:
    """The build wrote rows."""
    from embedder import contract

    n = contract.read_table(db, columns=[contract.H3]).num_rows if db.exists() else 0
    return None if n > 0 else "no rows written"


def map_written(db: Path, out: str) -> str | None:
    """``earthvec label`` wrote a non-empty map."""
    import pyarrow.parquet as pq

    p = db / "predictions" / "map.parquet"
    return None if p.is_file() and pq.read_metadata(p).num_rows > 0 else "no label map"


def labels_kept(db: Path, out: str) -> str | None:
    """The Latin-1 label ``Forêt`` came through intact."""
    import pyarrow.parquet as pq

    why = map_written(db, out)
    if why:
        return why
    labels = set(
        pq.read_table(db / "predictions" / "map.parquet", columns=["label"]).column("label").to_pylist()
    )
    return None if "Forêt" in labels else f"labels {sorted(labels)}"


AM_QUERY = (65.0, 175.0)
AM_BOX = (170.0, 50.0, -170.0, 75.0)


def antimeridian(db: Path, out: str) -> str | None:
    """Every result lies in the box across the antimeridian, and all its cells are found."""
    import h3.api.basic_int as h3i
    import pyarrow.compute as pc

    from embedder import contract

    rows = json.loads(out)
    x0, y0, x1, y1 = AM_BOX
    lons = [float(r["lon"]) for r in rows]
    if not rows or any(x1 < x < x0 for x in lons) or any(not y0 <= float(r["lat"]) <= y1 for r in rows):
        return f"results outside the box: {[(r['lat'], r['lon']) for r in rows]}"
    t = contract.read_table(db, columns=[contract.H3, contract.LAT, contract.LON])
    lat, lon = t.column(contract.LAT), t.column(contract.LON)
    inside = pc.and_(
        pc.and_(pc.greater_equal(lat, y0), pc.less_equal(lat, y1)),
        pc.or_(pc.greater_equal(lon, x0), pc.less_equal(lon, x1)),
    )
    cells = set(pc.filter(t.column(contract.H3), inside).to_pylist())
    cells.discard(h3i.latlng_to_cell(*AM_QUERY, contract.read_meta(db).h3_resolution))  # the query itself
    got = {h3i.str_to_int(r["h3"]) for r in rows}
    return None if got == cells else f"found {len(got)} of the box's {len(cells)} cells"


def _global(ctx: Ctx, tmp: Path) -> Args:
    db = ctx.global_db()
    x0, y0, x1, y1 = AM_BOX
    return [
        str(db),
        "--lat",
        str(AM_QUERY[0]),
        "--lon",
        str(AM_QUERY[1]),
        "-k",
        "50",
        "--format",
        "json",
        f"--bbox={x0:g},{y0:g},{x1:g},{y1:g}",
    ], db


# ---- storage cases (fixed by the storage work of issue 14) -----------------------------------



def _no_index(ctx: Ctx, db: Path) -> None:
    from embedder import contract

    shutil.rmtree(contract.index_dir(db), ignore_errors=True)


def _overwrite_with(make: Make) -> Callable[[Ctx, Path], Args]:
    """``earthvec build DB --overwrite --source TMP/bad.tif`` on a copy of the base database."""

    def setup(ctx: Ctx, tmp: Path) -> Args:
        args, db = into_existing(make)(ctx, tmp)
        return ["--overwrite", *args], db

    return setup


def _good_and_one_corrupt(ctx: Ctx, tmp: Path) -> None:
    (tmp / "in").mkdir()
    for p in ctx.chips:
        shutil.copy(p, tmp / "in")
    other = sorted((DATA / "eurosat_ms" / "tif" / "Residential").glob("*.tif"))[0]  # a cell of its own
    bf.corrupt_pixels(other, tmp / "in" / "zz_corrupt.tif")  # sorted last: read after the good chips


def _resume_after_truncation(ctx: Ctx, tmp: Path) -> Args:
    db = ctx.db_copy(tmp)
    bf.truncate(_shard(db), _shard(db), 0.5)
    return ["--source", str(ctx.root / "src" / "*.tif"), "--sensor", EUROSAT, "--model", "stats", str(db)], db


STORAGE_CASES: list[Case] = [
    Case(
        "similar_bad_cell_without_index",
        "similar",
        read(["--cell", "not-a-cell"], _no_index),
        "not-a-cell",
    ),
    Case(
        "overwrite_with_corrupt_pixels",
        "build",
        _overwrite_with(lambda c, t: bf.corrupt_pixels(chip(c), t / "bad.tif")),
        "truncated or corrupt",
    ),
    Case(
        "corrupt_file_among_good_files",
        "build",
        build(_good_and_one_corrupt, "{tmp}/in/*.tif"),
        "zz_corrupt.tif",
        published_only=True,  # finished shards stay unpublished for the next run to resume
    ),
    Case(
        "rebuild_over_damaged_shard",
        "build",
        _resume_after_truncation,
        "no longer matches its size or checksum",
    ),
]


# ---- the table -------------------------------------------------------------------------------

BAD_TIF = "{tmp}/bad.tif"
FOREST = str(DATA / "eurosat_ms" / "tif" / "Forest" / "Forest_19.tif")
FIRST_CHIP = sorted((DATA / "eurosat_ms" / "tif" / "Forest").glob("*.tif"))[0].name  # ctx.chips[0]

CASES: list[Case] = [
    # rasters
    Case(
        "tiff_truncated", "build", build(lambda c, t: bf.truncate(chip(c), t / "bad.tif"), BAD_TIF), "bad.tif"
    ),
    Case(
        "tiff_corrupt_pixels",
        "build",
        build(lambda c, t: bf.corrupt_pixels(chip(c), t / "bad.tif"), BAD_TIF),
        "truncated or corrupt",
    ),
    Case(
        "tiff_not_a_tiff",
        "build",
        build(lambda c, t: shutil.copy(c.seeds_csv, t / "bad.tif"), BAD_TIF),
        "not recognized as",
    ),
    Case(
        "tiff_empty_file", "build", build(lambda c, t: (t / "bad.tif").write_bytes(b""), BAD_TIF), "bad.tif"
    ),
    Case(
        "tiff_zero_bands",
        "build",
        build(lambda c, t: bf.patch_tags(chip(c), t / "bad.tif", {bf.TAG_SAMPLES: 0}), BAD_TIF),
        "bad.tif",
    ),
    Case(
        "tiff_declares_1e5_x_1e5_pixels",
        "build",
        build(
            lambda c, t: bf.patch_tags(
                chip(c), t / "bad.tif", {bf.TAG_WIDTH: 100_000, bf.TAG_HEIGHT: 100_000}
            ),
            BAD_TIF,
        ),
        "declares 100000 x 100000 pixels",
    ),
    Case(
        "raster_all_nan",
        "build",
        build(rewritten(lambda a: np.full(a.shape, np.nan, np.float32)), BAD_TIF),
        "no valid pixel",
    ),
    Case(
        "raster_all_inf",
        "build",
        build(rewritten(lambda a: np.full(a.shape, np.inf, np.float32)), BAD_TIF),
        "no valid pixel",
    ),
    Case("raster_all_nodata", "build", build(rewritten(np.zeros_like, nodata=0), BAD_TIF), "no valid pixel"),
    Case("raster_3_of_13_bands", "build", build(rewritten(lambda a: a[:3]), BAD_TIF), "has 3 bands"),
    Case(
        "band_files_of_different_extent",
        "build",
        build(_cropped_band, "{tmp}/l8_B*.tif", sensor="landsat8-l1"),
        "cover different areas",
    ),
    Case(
        "raster_no_crs",
        "build",
        build(lambda c, t: bf.strip_georeferencing(chip(c), t / "bad.tif", keep_transform=True), BAD_TIF),
        "no CRS",
    ),
    Case(
        "raster_no_georeferencing",
        "build",
        build(lambda c, t: bf.strip_georeferencing(chip(c), t / "bad.tif", keep_transform=False), BAD_TIF),
        "no CRS",
    ),
    Case("raster_wrong_crs", "build", build(rewritten(None, crs="EPSG:4326"), BAD_TIF), "CRS is wrong"),
    Case(
        "raster_geographic_crs_works",
        "build",
        build(lambda c, t: bf.reproject_to(chip(c), t / "geo.tif"), "{tmp}/geo.tif"),
        check=rows_built,
    ),
    Case(
        "bad_file_into_existing_db",
        "build",
        into_existing(lambda c, t: bf.truncate(chip(c, 1), t / "bad.tif")),
        "bad.tif",
    ),
    # sources and options
    Case(
        "source_given_twice",
        "build",
        build(lambda c, t: shutil.copy(chip(c), t / "a.tif"), "{tmp}/a.tif", "--source", "{tmp}/a.tif"),
        "is given twice",
    ),
    Case(
        "source_glob_overlaps_a_path",
        "build",
        build(
            lambda c, t: [shutil.copy(p, t) for p in c.chips[:3]],
            "{tmp}/*.tif",
            "--source",
            "{tmp}/./" + FIRST_CHIP,
        ),
        "is given twice",
    ),
    Case("source_glob_matches_nothing", "build", build(None, "{tmp}/none/*.tif"), "matches no file"),
    Case(
        "source_dangling_symlink",
        "build",
        build(lambda c, t: os.symlink(t / "gone.tif", t / "link.tif"), "{tmp}/link.tif"),
        "does not exist",
    ),
    Case(
        "source_directory_named_tif",
        "build",
        build(lambda c, t: (t / "dir.tif").mkdir(), "{tmp}/dir.tif"),
        "holds no .tif/.tiff/.vrt file",
    ),
    Case(
        "source_unreadable_directory",
        "build",
        build(_locked_dir, "{tmp}/locked"),
        "locked",
        needs_non_root=True,
    ),
    Case("build_into_a_file", "build", _into_file, "is a file, not a database folder"),
    Case("build_res_16", "build", build(None, FOREST, "--res", "16"), "--res 16"),
    Case("build_min_valid_2", "build", build(None, FOREST, "--min-valid", "2"), "--min-valid 2"),
    Case("build_datetime_garbage", "build", build(None, FOREST, "--datetime", "yesterday"), "yesterday"),
    Case("build_unknown_sensor", "build", build(None, FOREST, sensor="sentinel9"), "sentinel9"),
    # seeds
    Case("seeds_nan_coordinate", "label", label(csv(lambda r: [["nan", *r[0][1:]], *r[1:]])), "row 1"),
    Case("seeds_latitude_95", "label", label(csv(lambda r: [["95.0", *r[0][1:]], *r[1:]])), "row 1"),
    Case("seeds_wrong_columns", "label", label(csv(lambda r: r, header="x,y,class")), "columns"),
    Case("seeds_header_only", "label", label(csv(lambda r: [])), "none of the 0 seeds"),
    Case(
        "seeds_one_class",
        "label",
        label(csv(lambda r: [[a, b, "Forest"] for a, b, _ in r])),
        "label 'Forest'",
    ),
    Case(
        "seeds_all_outside_db",
        "label",
        label(csv(lambda r: [[f"{-float(a):.5f}", b, c] for a, b, c in r])),
        "none of the",
    ),
    Case("seeds_h3_other_resolution", "label", label(_h3_at(5)), "coarser than the database resolution"),
    Case(
        "seeds_h3_not_a_cell",
        "label",
        label(lambda c, f: f.write_text("h3,label\nzzzz,Forest\n8,SeaLake\n")),
        "row 1",
    ),
    Case(
        "seeds_h3_missing_value",
        "label",
        label(lambda c, f: f.write_text("h3,label\n,Forest\n88283082bffffff,SeaLake\n")),
        "has no h3 cell",
    ),
    Case("seeds_geojson_polygons", "label", label(geojson(_square), "seeds.geojson"), "not a Point"),
    Case(
        "seeds_geojson_truncated",
        "label",
        label(geojson(lambda x, y: {"type": "Point", "coordinates": [x, y]}, cut=200), "seeds.geojson"),
        "as GeoJSON",
    ),
    Case(
        "seeds_geojson_point_without_coordinates",
        "label",
        label(geojson(lambda x, y: {"type": "Point"}), "seeds.geojson"),
        "needs [lon, lat]",
    ),
    Case("seeds_binary_file", "label", label(lambda c, f: shutil.copy(chip(c), f)), "binary file"),
    Case(
        "seeds_utf8_bom_works",
        "label",
        label(lambda c, f: f.write_bytes(b"\xef\xbb\xbf" + c.seeds_csv.read_bytes())),
        check=map_written,
    ),
    Case(
        "seeds_latin1_labels_works",
        "label",
        label(
            lambda c, f: f.write_bytes(c.seeds_csv.read_text().replace("Forest", "Forêt").encode("latin-1"))
        ),
        check=labels_kept,
    ),
    Case("seeds_1e6_rows_works", "label", label(_million), check=map_written, slow=True),
    Case(
        "label_k_0", "label", label(lambda c, f: shutil.copy(c.seeds_csv, f), "seeds.csv", "-k", "0"), "k=0"
    ),
    # damaged or odd databases, read commands
    Case("db_foreign_parquet_info_works", "info", read([], _foreign_parquet), check=foreign_reported),
    Case(
        "db_foreign_parquet_sql_works",
        "sql",
        read(["SELECT count(*) AS n FROM embeddings"], _foreign_parquet),
        check=base_count,
    ),
    Case(
        "db_foreign_parquet_no_manifest",
        "info",
        read([], lambda c, db: (_foreign_parquet(c, db), (db / "manifest.json").unlink())),
        "zz_foreign.parquet",
    ),
    Case(
        "db_truncated_shard_similar",
        "similar",
        read(["--lat", "50", "--lon", "8"], lambda c, db: bf.truncate(_shard(db), _shard(db), 0.5)),
        "not a readable Parquet file",
    ),
    Case(
        "db_truncated_shard_sql",
        "sql",
        read(["SELECT count(*) FROM embeddings"], lambda c, db: bf.truncate(_shard(db), _shard(db), 0.5)),
        "not a readable Parquet file",
    ),
    Case("db_sidecar_other_dimension", "similar", read(["--lat", "50", "--lon", "8"], _sidecar_dim), "index"),
    Case("db_empty_folder_info", "info", read([], _emptied), "build the database first"),
    Case(
        "db_empty_folder_similar",
        "similar",
        read(["--lat", "50", "--lon", "8"], _emptied),
        "build the database first",
    ),
    Case("db_shards_deleted_sql", "sql", read(["SELECT 1"], _no_shards), "listed in the database's manifest"),
    Case(
        "db_path_is_a_file",
        "info",
        lambda c, t: ([str(c.seeds_csv)], c.seeds_csv),
        "is a file, not a database",
    ),
    Case("similar_cell_other_resolution", "similar", read(["--cell", "{coarse}"]), "resolution 5"),
    Case("similar_cell_not_hex", "similar", read(["--cell", "not-a-cell"]), "not-a-cell"),
    Case("similar_latitude_95", "similar", read(["--lat", "95", "--lon", "8"]), "latitude 95"),
    Case(
        "similar_bbox_south_above_north",
        "similar",
        read(["--cell", "{cell}", "--bbox=0,60,10,50"]),
        "swap them",
    ),
    Case("similar_bbox_antimeridian_works", "similar", _global, check=antimeridian),
    Case(
        "sql_copy_to_file",
        "sql",
        read(["COPY (SELECT * FROM embeddings) TO '{tmp}/leak.csv'"]),
        "COPY reads or writes files",
    ),
    Case(
        "sql_read_etc_passwd",
        "sql",
        read(["SELECT * FROM read_csv('/etc/passwd')"]),
        "cannot read or write files",
    ),
    Case("checkpoint_other_architecture", "eval", evaluate(_other_architecture), "another architecture"),
    Case("checkpoint_truncated", "eval", evaluate(_truncated_checkpoint), "cut.pt"),
]

CASES += STORAGE_CASES
XFAIL.update({c.name: c.xfail for c in CASES if c.xfail})

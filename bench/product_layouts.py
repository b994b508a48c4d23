"""Files in other products' published layouts, written from real earthvec embeddings.

No product file can be downloaded here, so the importers are checked on files that follow
each product's documented layout (band count, dtype, quantisation, tiling, file names,
Parquet schema) and hold real vectors: earthvec-tex embeddings of the shared imagery,
projected to the product's dimension by one fixed orthonormal matrix (:func:`projection`)
and quantised as the product documents. What is NOT real: the vectors are earthvec's, not
the product's model; Major TOM grid cells and Clay MGRS names are placeholders; every pixel
of a cell holds the cell's vector (pixel fields are piecewise constant at the native
resolution). The writers share no code with the importers: cells are burnt into the pixel
grid with GDAL's rasterizer (pixel centre inside the cell polygon), quantisation is written
out here from the documents.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from embedder.h3grid import cell_polygons

SEED = 16
ROW_BLOCK = 128


def projection(src_dim: int, dim: int, seed: int = SEED) -> np.ndarray:
    """A fixed ``(src_dim, dim)`` matrix with orthonormal columns (``dim <= src_dim``) or rows.

    ``v @ M`` keeps cosines exactly when ``dim >= src_dim`` (an isometry) and projects onto a
    random ``dim``-d subspace otherwise.
    """
    rng = np.random.default_rng(seed)
    if dim <= src_dim:
        q, _ = np.linalg.qr(rng.standard_normal((src_dim, dim)))
        return q
    q, _ = np.linalg.qr(rng.standard_normal((dim, src_dim)))
    return q.T


def unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1."""
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class Field:
    """Vectors per H3 cell (sorted cells) at one resolution: what every pixel in a cell holds."""

    cells: np.ndarray
    vectors: np.ndarray
    res: int


def _pixel_rows(
    crs: CRS, t: Affine, width: int, height: int, field: Field
) -> Callable[[int, int], np.ndarray]:
    """Row blocks of the field's row index under every pixel centre (``-1`` outside the field).

    The cells' polygons are burnt into the raster grid with GDAL (``rasterio.features.rasterize``:
    a pixel takes the polygon holding its centre), independently of the importers' code.
    """
    polys = cell_polygons(field.cells)
    to_dst = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    projected = shapely.transform(polys, lambda x, y: np.array(to_dst.transform(x, y)), interleaved=False)
    shapes = ((p, i) for i, p in enumerate(projected))
    burnt = rasterize(shapes, out_shape=(height, width), transform=t, fill=-1, dtype="int32")

    def rows(r0: int, r1: int) -> np.ndarray:
        return burnt[r0:r1]

    return rows


# ---------------------------------------------------------------- Satellite Embedding


def aef_quantise(v: np.ndarray) -> np.ndarray:
    """Google's documented mapping inverted: ``q = sign(v) sqrt(|v|) 127.5``, rounded into [-127, 127]."""
    return np.clip(np.rint(np.sign(v) * np.sqrt(np.abs(v)) * 127.5), -127, 127).astype(np.int8)


def utm_grid(
    bounds_ll: tuple[float, float, float, float], epsg: int, px: float = 10.0
) -> tuple[Affine, int, int]:
    """A north-up grid of ``px`` metres covering a lon/lat box in a UTM zone (snapped to ``px``)."""
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{epsg}", *bounds_ll)
    left, top = math.floor(left / px) * px, math.ceil(top / px) * px
    width, height = math.ceil((right - left) / px), math.ceil((top - bottom) / px)
    return Affine(px, 0.0, left, 0.0, -px, top), width, height


def write_aef_cog(
    path: Path,
    field: Field,
    bounds_ll: tuple[float, float, float, float],
    epsg: int,
    *,
    bottom_up: bool = False,
) -> Path:
    """A Cloud Storage-style Satellite Embedding file: 64 int8 bands A00..A63, NoData -128, 10 m UTM.

    ``bottom_up`` writes the first row at the south edge with a positive y resolution, as the
    Source Cooperative copies are.
    """
    t, width, height = utm_grid(bounds_ll, epsg)
    if bottom_up:
        t = Affine(t.a, 0.0, t.c, 0.0, -t.e, t.f + t.e * height)
    rows = _pixel_rows(CRS.from_epsg(epsg), t, width, height, field)
    q = aef_quantise(field.vectors)
    return _write_a_bands(path, CRS.from_epsg(epsg), t, width, height, rows, q, -128)


def _write_a_bands(
    path: Path,
    crs: CRS,
    t: Affine,
    width: int,
    height: int,
    rows: Callable[[int, int], np.ndarray],
    values: np.ndarray,
    nodata: int | None,
) -> Path:
    """A tiled GTiff of 64 bands A00..A63: pixel ``(r, c)`` holds ``values[rows(r0, r1)[r, c]]``.

    Pixels without a row (index -1) hold ``nodata``, or zeros when there is none (the Earth
    Engine export's masked pixels). The dtype is ``values``'.
    """
    prof = {"driver": "GTiff", "width": width, "height": height, "count": 64, "dtype": values.dtype.name,
            "nodata": nodata, "crs": crs, "transform": t, "tiled": True, "blockxsize": 256,
            "blockysize": 256, "compress": "deflate"}  # fmt: skip
    fill = values.dtype.type(0 if nodata is None else nodata)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **prof) as dst:
        for b in range(64):
            dst.set_band_description(b + 1, f"A{b:02d}")
        for r0 in range(0, height, ROW_BLOCK):
            r1 = min(r0 + ROW_BLOCK, height)
            idx = rows(r0, r1)
            block = np.where(idx[..., None] >= 0, values[np.maximum(idx, 0)], fill)
            dst.write(np.moveaxis(block, -1, 0), window=Window(0, r0, width, r1 - r0))
    return path


def write_ee_export(
    path: Path, field: Field, bounds_ll: tuple[float, float, float, float], px_deg: float
) -> Path:
    """An Earth Engine-style export: 64 float32 bands A00..A63 in EPSG:4326; masked pixels all zero."""
    w, s, e, n = bounds_ll
    width, height = math.ceil((e - w) / px_deg), math.ceil((n - s) / px_deg)
    t = Affine(px_deg, 0.0, w, 0.0, -px_deg, n)
    rows = _pixel_rows(CRS.from_epsg(4326), t, width, height, field)
    values = field.vectors.astype(np.float32, copy=False)
    return _write_a_bands(path, CRS.from_epsg(4326), t, width, height, rows, values, None)


# ---------------------------------------------------------------- TESSERA


def tessera_quantise(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel symmetric int8: ``scale = max|v| / 127``, ``q = round(v / scale)``; read as ``q * scale``."""
    scale = np.abs(v).max(axis=-1) / 127.0
    q = np.rint(v / np.where(scale > 0, scale, 1.0)[..., None])
    return np.clip(q, -127, 127).astype(np.int8), scale.astype(np.float32)


def tessera_cells(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Int8 values and scales of raw (not unit length: a fixed random gain per cell) TESSERA-like vectors."""
    gain = np.random.default_rng(SEED).uniform(2.0, 12.0, len(vectors))
    return tessera_quantise(vectors * gain[:, None])


def dequantised(kind: str, vectors: np.ndarray) -> np.ndarray:
    """What a layout stores for unit ``vectors`` once read back (before pooling), renormalised.

    ``kind``: ``aef`` (int8 sqrt scale), ``tessera`` (NPY, int8 x scale with the gain),
    ``tessera-tiff`` (int8 x scale, stored de-quantised), anything else float32 as given.
    """
    if kind == "aef":
        q = aef_quantise(vectors).astype(np.float64) / 127.5
        return unit(np.sign(q) * q * q)
    if kind in ("tessera", "tessera-tiff"):
        q, sc = tessera_cells(vectors) if kind == "tessera" else tessera_quantise(vectors)
        return unit(q.astype(np.float64) * sc[:, None])
    return unit(vectors.astype(np.float32).astype(np.float64))


def tessera_tile_grid(lon: float, lat: float) -> tuple[int, Affine, int, int]:
    """EPSG code, transform and size of a 0.1-degree tile centred at (lon, lat) on a 10 m UTM grid."""
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    t, w, h = utm_grid((lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05), epsg)
    return epsg, t, w, h


def write_tessera_npy(
    root: Path, lon: float, lat: float, year: int, field: Field, version: str = "1.0"
) -> Path:
    """A geotessera NPY tile (int8 + per-pixel scales) and its landmask GeoTIFF, under ``root``."""
    grid = f"grid_{lon:.2f}_{lat:.2f}"
    epsg, t, width, height = tessera_tile_grid(lon, lat)
    tile_dir = root / "global_0.1_degree_representation" / str(year) / grid
    tile_dir.mkdir(parents=True, exist_ok=True)
    emb = np.lib.format.open_memmap(
        tile_dir / f"{grid}.npy", mode="w+", dtype=np.int8, shape=(height, width, 128)
    )
    scales = np.zeros((height, width), dtype=np.float32)
    land = np.zeros((height, width), dtype=np.uint8)
    rows = _pixel_rows(CRS.from_epsg(epsg), t, width, height, field)
    q_cell, s_cell = tessera_cells(field.vectors)  # every pixel of a cell holds its cell's vector
    for r0 in range(0, height, ROW_BLOCK):
        r1 = min(r0 + ROW_BLOCK, height)
        idx = rows(r0, r1)
        inside = idx >= 0
        emb[r0:r1] = np.where(inside[..., None], q_cell[np.maximum(idx, 0)], np.int8(0))
        scales[r0:r1] = np.where(inside, s_cell[np.maximum(idx, 0)], 0.0)
        land[r0:r1] = inside
    emb.flush()
    del emb
    np.save(tile_dir / f"{grid}_scales.npy", scales)
    mask_dir = root / "global_0.1_degree_tiff_all"
    mask_dir.mkdir(parents=True, exist_ok=True)
    prof = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
            "crs": CRS.from_epsg(epsg), "transform": t, "compress": "deflate"}  # fmt: skip
    with rasterio.open(mask_dir / f"{grid}.tiff", "w", **prof) as dst:
        dst.write(land, 1)
    (root / "tessera_metadata.json").write_text(
        json.dumps(
            {
                "dataset_version": version,
                "dataset_variant": "vultr",
                "embeddings_subdir": "global_0.1_degree_representation",
            },
            indent=2,
        )  # fmt: skip
    )
    return tile_dir / f"{grid}.npy"


def write_tessera_geotiff(
    out: Path, lon: float, lat: float, year: int, field: Field, version: str = "v1"
) -> Path:
    """A geotessera GeoTIFF export: 128 float32 bands ``Tessera_Band_<i>`` (de-quantised), UTM, tags."""
    grid = f"grid_{lon:.2f}_{lat:.2f}"
    epsg, t, width, height = tessera_tile_grid(lon, lat)
    path = out / str(year) / grid / f"{grid}_{year}.tiff"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _pixel_rows(CRS.from_epsg(epsg), t, width, height, field)
    prof = {"driver": "GTiff", "width": width, "height": height, "count": 128, "dtype": "float32",
            "crs": CRS.from_epsg(epsg), "transform": t, "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "lzw"}  # fmt: skip
    with rasterio.open(path, "w", **prof) as dst:
        for b in range(128):
            dst.set_band_description(b + 1, f"Tessera_Band_{b}")
        dst.update_tags(
            TESSERA_DATASET_VERSION=version,
            TESSERA_YEAR=str(year),
            TESSERA_TILE_LAT=f"{lat:.2f}",
            TESSERA_TILE_LON=f"{lon:.2f}",
            TESSERA_DESCRIPTION="GeoTessera satellite embedding tile",
        )
        q, sc = tessera_quantise(field.vectors)
        deq = (q.astype(np.float32) * sc[:, None]).astype(np.float32)
        for r0 in range(0, height, ROW_BLOCK):
            r1 = min(r0 + ROW_BLOCK, height)
            idx = rows(r0, r1)
            block = np.where(idx[..., None] >= 0, deq[np.maximum(idx, 0)], np.float32(0.0))
            dst.write(np.moveaxis(block, -1, 0), window=Window(0, r0, width, r1 - r0))
    return path


# ---------------------------------------------------------------- chip products


@dataclass
class Chips:
    """Real chips: footprints (WGS84 polygons), centres, source files and their vectors."""

    footprints: np.ndarray  # shapely polygons, lon/lat
    lat: np.ndarray
    lon: np.ndarray
    files: list[str]
    vectors: np.ndarray


def chip_footprints(files: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 footprints and centroid (lat, lon) of raster files."""
    polys, lat, lon = [], [], []
    for f in files:
        with rasterio.open(f) as src:
            w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        p = shapely.box(w, s, e, n)
        polys.append(p)
        c = p.centroid
        lat.append(c.y)
        lon.append(c.x)
    return np.array(polys, dtype=object), np.array(lat), np.array(lon)


def _magnitudes(n: int) -> np.ndarray:
    return np.random.default_rng(SEED + 1).uniform(0.5, 40.0, n)  # raw model outputs are not unit length


def write_majortom(
    root: Path, chips: Chips, dataset: str = "Core-S2L1C-SSL4EO", per_shard: int = 200
) -> list[Path]:
    """Major TOM shards ``<dataset>/embeddings/part_<a>-<b>.parquet`` (placeholder grid cells)."""
    out = []
    vecs = chips.vectors * _magnitudes(len(chips.vectors))[:, None]
    for k, a in enumerate(range(0, len(vecs), per_shard)):
        b = min(a + per_shard, len(vecs))
        sl = slice(a, b)
        rows_u = np.floor(chips.lat[sl] * 111.32 / 10).astype(np.int16)  # placeholder, not the Major TOM grid
        cols_r = np.floor(chips.lon[sl] * 111.32 * np.cos(np.radians(chips.lat[sl])) / 10).astype(np.int16)
        ts = "20170601T103021"
        pids = [f"S2A_MSIL1C_{ts}_N0205_R108_T32UPU_{ts}" for _ in range(b - a)]
        geoms = shapely.to_wkb(chips.footprints[sl])
        keys = [f"{g!r}_{ts}_{p}" for g, p in zip(geoms, pids, strict=True)]
        uids = [hashlib.sha256(k.encode()).hexdigest() for k in keys]
        grid = [
            f"{abs(r)}{'UD'[int(r < 0)]}_{abs(c)}{'RL'[int(c < 0)]}"
            for r, c in zip(rows_u.tolist(), cols_r.tolist(), strict=True)
        ]
        table = pa.table({
            "unique_id": uids,
            "embedding": pa.array(list(vecs[sl].astype(np.float32)), type=pa.list_(pa.float32())),
            "timestamp": [ts] * (b - a),
            "product_id": pids,
            "grid_cell": grid,
            "grid_row_u": pa.array(rows_u, type=pa.int16()),
            "grid_col_r": pa.array(cols_r, type=pa.int16()),
            "geometry": pa.array(list(geoms), type=pa.binary()),
            "centre_lat": pa.array(chips.lat[sl], type=pa.float32()),
            "centre_lon": pa.array(chips.lon[sl], type=pa.float32()),
            "utm_footprint": [p.wkt for p in chips.footprints[sl]],
            "utm_crs": ["EPSG:4326"] * (b - a),
            "pixel_bbox": pa.array([[0, 0, 64, 64]] * (b - a), type=pa.list_(pa.int64())),
        })  # fmt: skip
        path = root / dataset / "embeddings" / f"part_{k * 50 + 1:05d}-{k * 50 + 50:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        out.append(path)
    return out


def write_clay(root: Path, chips: Chips, version: str = "v001") -> list[Path]:
    """Clay GeoParquet ``<tile>_<start>_<end>_<version>.gpq`` (index, source_url, date, embeddings, ...)."""
    import datetime as dt

    vecs = chips.vectors * _magnitudes(len(chips.vectors))[:, None]
    gdf = gpd.GeoDataFrame(
        {
            "source_url": [f"file://{f}" for f in chips.files],
            "date": [dt.date(2017, 6, 1)] * len(chips.files),
            "embeddings": list(vecs.astype(np.float32)),
        },
        geometry=list(chips.footprints),
        crs="OGC:CRS84",
    ).reset_index()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"EUROSAT_20170601_20170601_{version}.gpq"  # placeholder tile name (not an MGRS tile)
    gdf.to_parquet(path)
    return [path]


def write_earthindex(root: Path, chips: Chips, model_id: str, model_version: str) -> list[Path]:
    """Earth Index GeoParquet (id, embedding, geometry) with the ``emb`` footer block."""
    gdf = gpd.GeoDataFrame(
        {"id": [Path(f).stem for f in chips.files], "embedding": list(chips.vectors.astype(np.float32))},
        geometry=list(chips.footprints),
        crs="EPSG:4326",
    )
    table = pa.Table.from_pandas(gdf.to_wkb(), preserve_index=False)
    emb = {
        "version": "0.0.1",
        "model": {"id": model_id, "version": model_version, "name": model_id, "source": "https://github.com/earthvec",
                  "description": "earthvec-tex vectors, fixed orthonormal projection (test layout)"},
        "providers": [{"name": "earthvec tests"}],
        "license": "CC-BY-4.0",
        "datetime": "2017-07-02T00:00:00Z", "start_datetime": "2017-01-01T00:00:00Z",
        "end_datetime": "2018-01-01T00:00:00Z",
        "datasets": [{"dataset_source": "EuroSAT-MS", "dataset_name": "EuroSAT-MS chips"}],
        "embedding_dim": int(chips.vectors.shape[1]), "embedding_quantization": "None",
    }  # fmt: skip
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}}}  # fmt: skip
    table = table.replace_schema_metadata(
        {b"geo": json.dumps(geo).encode(), b"emb": json.dumps(emb).encode()}
    )
    root.mkdir(parents=True, exist_ok=True)
    path = root / "EUROSAT.parquet"
    pq.write_table(table, path)
    return [path]

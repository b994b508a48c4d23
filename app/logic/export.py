"""Exports of seed labels and kNN maps: GeoJSON, GeoParquet and GeoTIFF (all in memory)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from rasterio.transform import from_origin, rowcol

from embedder import contract
from embedder.h3grid import cell_centres, cell_geojson, cells_wkb

NODATA_CLASS = 0
MAX_RASTER_PX = 4096


def geojson(cells: np.ndarray, properties: Mapping[str, Sequence[object]]) -> bytes:
    """A FeatureCollection of cell polygons (lon/lat) with ``h3`` and the given properties.

    Longitudes are unwrapped (:func:`embedder.h3grid.cell_geojson`): a cell on the
    antimeridian is one small polygon, not a band around the globe.
    """
    feats = []
    for i, c in enumerate(cells):
        props: dict[str, object] = {"h3": format(int(c), "x")}
        props.update({k: v[i] for k, v in properties.items()})
        feats.append(
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": cell_geojson(int(c))},
             "properties": props}
        )
    return json.dumps({"type": "FeatureCollection", "features": feats}).encode()


def geoparquet(cells: np.ndarray, columns: Mapping[str, pa.Array | np.ndarray | Sequence[object]]) -> bytes:
    """GeoParquet 1.1 bytes: h3, lat, lon, geometry (WKB polygons) and ``columns``."""
    cells = np.asarray(cells, dtype=np.uint64)
    lat, lon = cell_centres(cells)
    table = pa.table(
        {
            contract.H3: pa.array(cells, type=pa.uint64()),
            contract.LAT: lat,
            contract.LON: lon,
            contract.GEOMETRY: pa.array(cells_wkb(cells), type=pa.binary()),
            **{k: v if isinstance(v, pa.Array) else pa.array(list(v) if not isinstance(v, np.ndarray) else v)
               for k, v in columns.items()},
        }
    )
    table = contract.to_geoparquet(table)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def geotiff(
    cells: np.ndarray, classes: list[str], pred: np.ndarray, confidence: np.ndarray
) -> bytes:
    """A two-band EPSG:4326 GeoTIFF of a kNN map (cell-centre raster).

    Band 1 is the class number (1-based, 0 = no cell; names in the ``classes`` tag and band
    description), band 2 the confidence in percent. Pixels are about one cell wide; each
    cell paints the pixel holding its centre (``rasterio.transform.rowcol``; a later cell
    overwrites an earlier one in the same pixel), at most :data:`MAX_RASTER_PX` pixels per side.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    lat, lon = cell_centres(cells)
    res = h3i.get_resolution(int(cells[0])) if len(cells) else 0
    cell_deg = 2.0 * h3i.average_hexagon_edge_length(res, "km") / 111.32
    pad = cell_deg
    west, east = float(lon.min()) - pad, float(lon.max()) + pad
    south, north = float(lat.min()) - pad, float(lat.max()) + pad
    px = max(cell_deg, (east - west) / MAX_RASTER_PX, (north - south) / MAX_RASTER_PX)
    width = max(1, int(np.ceil((east - west) / px)))
    height = max(1, int(np.ceil((north - south) / px)))
    transform = from_origin(west, north, px, px)
    rows, cols = rowcol(transform, lon, lat)  # the pixel holding each centre
    row = np.clip(np.asarray(rows, dtype=np.int64), 0, height - 1)
    col = np.clip(np.asarray(cols, dtype=np.int64), 0, width - 1)
    cls = np.zeros((height, width), dtype=np.uint8)
    conf = np.zeros((height, width), dtype=np.uint8)
    cls[row, col] = np.asarray(pred, dtype=np.int64) + 1
    conf[row, col] = np.clip(np.round(np.asarray(confidence) * 100), 0, 100).astype(np.uint8)
    with rasterio.MemoryFile() as mem:
        with mem.open(
            driver="GTiff", width=width, height=height, count=2, dtype="uint8", crs="EPSG:4326",
            transform=transform, nodata=NODATA_CLASS, compress="deflate",
        ) as dst:
            dst.write(cls, 1)
            dst.write(conf, 2)
            dst.set_band_description(1, "class (1-based; 0 = no cell)")
            dst.set_band_description(2, "confidence (%)")
            dst.update_tags(classes=json.dumps(classes))
            dst.update_tags(1, **{str(i + 1): c for i, c in enumerate(classes)})
        return bytes(mem.read())

"""True-colour thumbnails of a cell, read from the source imagery named in its row.

Red, green and blue are the sensor's optical bands nearest 665, 560 and 490 nm, found in
the sensor table (EuroSAT: B04, B03, B02; Landsat 8: B4, B3, B2), never fixed indices.
The window read is the cell's footprint in the raster's CRS (whole scenes), or the whole
file when the file is a single chip (at most twice the sensor's chip size).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from embedder.errors import EarthvecError
from embedder.h3grid import cell_rings
from embedder.sensors import Sensor, get_sensor
from embedder.sources import RasterItem, group_items, is_url

log = logging.getLogger(__name__)

RGB_NM = (665.0, 560.0, 490.0)
MAX_GAP_NM = 40.0
THUMB_PX = 128


def rgb_bands(sensor: Sensor) -> list[str] | None:
    """Names of the sensor's red, green and blue bands (nearest wavelengths), or None."""
    optical = [b for b in sensor.bands if b.wavelength_nm is not None]
    if not optical:
        return None
    out = []
    for target in RGB_NM:
        best = min(optical, key=lambda b: abs(float(b.wavelength_nm or 0.0) - target))
        if abs(float(best.wavelength_nm or 0.0) - target) > MAX_GAP_NM:
            return None
        out.append(best.name)
    return out


def _resolve(path: str, base: Path | None) -> str | None:
    if is_url(path) or Path(path).is_file():
        return path
    if base is not None and (base / path).is_file():
        return str(base / path)
    return None


def _items(paths: list[str], sensor: Sensor) -> list[RasterItem]:
    try:
        return group_items(paths, sensor)
    except (EarthvecError, RasterioError):
        items = []
        for p in paths:  # a row may mix sensors: try its files one by one
            try:
                items.extend(group_items([p], sensor))
            except (EarthvecError, RasterioError):
                continue
        return items


def _cell_window(src: rasterio.io.DatasetReader, cell: int, chip_px: int) -> Window:
    full = Window(0, 0, src.width, src.height)
    if src.width <= 2 * chip_px and src.height <= 2 * chip_px:
        return full  # a single-chip file: the chip is the whole file
    ring = cell_rings(np.array([cell], dtype=np.uint64))[0]  # lon/lat, unwrapped at the antimeridian
    (west, south), (east, north) = ring.min(axis=0), ring.max(axis=0)
    box = transform_bounds("EPSG:4326", src.crs, west, south, east, north)
    win = from_bounds(*box, transform=src.transform)
    try:
        return win.intersection(full).round_offsets().round_lengths()
    except Exception:  # noqa: BLE001 - rasterio raises WindowError when they do not overlap
        return Window(0, 0, 0, 0)


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """Percentile stretch (2..98, all bands together) to uint8 (H, W, 3)."""
    finite = rgb[np.isfinite(rgb)]
    if finite.size == 0:
        return np.zeros((*rgb.shape[1:], 3), dtype=np.uint8)
    lo, hi = np.percentile(finite, [2, 98])
    x = (rgb - lo) / (hi - lo if hi > lo else 1.0)
    x = np.nan_to_num(np.clip(x, 0, 1), nan=0.0)
    return (np.moveaxis(x, 0, -1) * 255).astype(np.uint8)


def true_colour(
    cell: int, sources: list[str], sensors: list[str], base: Path | None = None, px: int = THUMB_PX
) -> np.ndarray | None:
    """An (H, W, 3) uint8 true-colour image of ``cell``, or None when no imagery is readable.

    Args:
        cell: the H3 cell (its footprint is the window read).
        sources: the row's ``source`` files.
        sensors: the row's ``sensors`` presets.
        base: folder to resolve relative source paths against (besides the working dir).
        px: longest side of the thumbnail.
    """
    paths = [r for p in sources if (r := _resolve(p, base))]
    if not paths:
        return None
    for name in sensors:
        try:
            sensor = get_sensor(name)
        except EarthvecError:
            continue
        bands = rgb_bands(sensor)
        if bands is None:
            continue
        for item in _items(paths, sensor):
            if not all(b in item.band_files for b in bands):
                continue
            try:
                planes: list[np.ndarray] = []
                for b in bands:
                    path, index = item.band_files[b]
                    with rasterio.open(path) as src:
                        win = _cell_window(src, cell, sensor.chip_px)
                        if win.width < 1 or win.height < 1:
                            break
                        scale = min(1.0, px / max(win.width, win.height))
                        shape = (max(1, round(win.height * scale)), max(1, round(win.width * scale)))
                        if planes:
                            shape = planes[0].shape
                        raw = src.read(index, window=win, out_shape=shape).astype(np.float32)
                        if sensor.nodata is not None:
                            raw[raw == sensor.nodata] = np.nan
                        planes.append(raw * sensor.scale + sensor.offset)
                if len(planes) == 3:
                    return _stretch(np.stack(planes))
            except RasterioError as exc:
                log.info("cannot read %s for cell %x: %s", item.key, cell, exc)
    return None

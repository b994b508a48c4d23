"""Read planned chips (:mod:`embedder.chipplan`) centred on H3 cells.

Every chip is a north-up ``chip_px`` x
``chip_px`` grid at the sensor's ``chip_gsd_m`` in the UTM zone of its centre (see
:mod:`embedder.warp`): a raster already on that grid is read with a window, any other CRS
(geographic, polar, a neighbouring zone) is reprojected onto it. Bands of other resolutions
are resampled onto that grid. Pixels outside the raster, equal to nodata or flagged by the
sensor's quality masks become NaN and are counted in ``valid_fraction``, never zero-filled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.windows import Window

from embedder.chipplan import (
    ChipSpec,
    ItemGeometry,
    item_geometry,
)
from embedder.masks import mask_chips
from embedder.rasterfile import OpenFiles, RasterItem
from embedder.warp import (
    NATIVE_MAX_DEVIATION_PX,
    ChipGrid,
    chip_grid,
    deviation_px,
    footprint_size_m,
    warp_read,
)

_PLAIN_MASKS = ([MaskFlags.all_valid], [MaskFlags.nodata])  # validity = nodata value (or none)


def _resampling(src: rasterio.DatasetReader, zoom: float) -> Resampling:
    """Nearest when source and chip pixels match (keeps nodata exact), else bilinear/average."""
    if abs(zoom - 1.0) < 0.05:
        return Resampling.nearest
    return Resampling.bilinear if zoom > 1.0 else Resampling.average


def _read_window(
    src: rasterio.DatasetReader,
    bands: list[int],
    x: float,
    y: float,
    size: float,
    px: int,
    resampling: Resampling | None = None,
) -> np.ndarray:
    """Read a ``size``-unit square centred on (x, y) onto a (len(bands), px, px) grid, NaN outside."""
    inv = ~src.transform
    c0, r0 = inv @ (x - size / 2, y + size / 2)
    c1, r1 = inv @ (x + size / 2, y - size / 2)
    out = np.full((len(bands), px, px), np.nan, dtype=np.float32)
    cc0, rr0 = max(c0, 0.0), max(r0, 0.0)
    cc1, rr1 = min(c1, float(src.width)), min(r1, float(src.height))
    if cc1 <= cc0 or rr1 <= rr0:
        return out
    # destination pixels covered by the part of the window inside the raster
    sx, sy = px / (c1 - c0), px / (r1 - r0)
    d0, d1 = round((cc0 - c0) * sx), round((cc1 - c0) * sx)
    e0, e1 = round((rr0 - r0) * sy), round((rr1 - r0) * sy)
    if d1 <= d0 or e1 <= e0:
        return out
    win = Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
    out[:, e0:e1, d0:d1] = _read_nan(
        src,
        bands,
        window=win,
        out_shape=(len(bands), e1 - e0, d1 - d0),
        resampling=resampling or _resampling(src, sx),
    )
    return out


def _read_nan(src: rasterio.DatasetReader, bands: list[int], **kw: Any) -> np.ndarray:
    """``src.read(bands, **kw)`` as float32 with NaN where the file has no data.

    Bands whose validity is just their nodata value (or that are all valid) are read plainly
    and compared with nodata, which is what a masked read does, at a fraction of its cost.
    """
    flags = src.mask_flag_enums
    if all(f[bi - 1] in _PLAIN_MASKS for f in [flags] for bi in bands):
        data = src.read(bands, **kw)
        out = data.astype(np.float32)
        if src.nodata is not None and not np.isnan(src.nodata):
            out[data == src.nodata] = np.nan
        return out
    return np.ma.filled(src.read(bands, masked=True, **kw).astype(np.float32), np.nan)


def _read_whole(
    src: rasterio.DatasetReader, bands: list[int], px: int, resampling: Resampling | None = None
) -> np.ndarray:
    """Read whole bands resampled to (len(bands), px, px) (chip mode)."""
    if (src.height, src.width) == (px, px):
        return _read_nan(src, bands)
    return _read_nan(
        src,
        bands,
        out_shape=(len(bands), px, px),
        resampling=resampling or _resampling(src, px / src.width),
    )


def chip_grids(item: RasterItem, geom: ItemGeometry, specs: list[ChipSpec], mode: str) -> list[ChipGrid]:
    """The local metric grid of each chip.

    In ``chip`` mode the chip is the whole file: centred on the file centre, as wide and high
    as the file measures on the ground. In ``scene`` mode it is centred on the cell centre,
    ``chip_size_m`` wide.
    """
    s = item.sensor
    if mode != "chip":
        return [chip_grid(sp.lat, sp.lon, s.chip_px, s.chip_size_m) for sp in specs]
    w_m, h_m = footprint_size_m(geom.crs, geom.bounds)
    lons, lats = geom.to_lonlat([sp.x for sp in specs], [sp.y for sp in specs])
    return [chip_grid(lat, lon, s.chip_px, w_m, h_m) for lat, lon in zip(lats, lons, strict=True)]


def _native_affine(src: rasterio.DatasetReader, spec: ChipSpec, size: float, px: int) -> Affine:
    """Chip pixel -> source CRS as a direct (unwarped) window read of a scene chip maps it."""
    return Affine(size / px, 0.0, spec.x - size / 2, 0.0, -size / px, spec.y + size / 2)


def _direct(src: rasterio.DatasetReader, spec: ChipSpec, grid: ChipGrid, size: float, cache: dict) -> bool:
    """Whether a scene chip can be read with a plain window.

    True when the file's grid departs from the local chip grid by under
    ``NATIVE_MAX_DEVIATION_PX`` pixels; ``cache`` memoises it per cell for one file grid.
    """
    if spec.cell not in cache:
        native = _native_affine(src, spec, size, grid.width)
        cache[spec.cell] = deviation_px(grid, native, src.crs, src.transform) <= NATIVE_MAX_DEVIATION_PX
    return bool(cache[spec.cell])


def _read_one(
    src: rasterio.DatasetReader,
    bands: list[int],
    spec: ChipSpec,
    grid: ChipGrid,
    mode: str,
    size: float,
    nodata: float | None,
    resampling: Resampling | None = None,
    cache: dict | None = None,
) -> np.ndarray:
    """One chip from one open file: a direct read when the grids agree, else a warped one.

    A chip-mode file in a projected CRS is its own chip grid (read whole, exact pixels); in a
    geographic CRS it is warped onto the local grid. A scene chip is read with a window when
    the file's grid departs from the local chip grid by under half a pixel, else warped.
    """
    px = grid.width
    if mode == "chip":
        if src.crs is not None and src.crs.is_projected:
            return _read_whole(src, bands, px, resampling)
    elif _direct(src, spec, grid, size, {} if cache is None else cache):
        return _read_window(src, bands, spec.x, spec.y, size, px, resampling)
    return warp_read(src, bands, grid, src_nodata=nodata, resampling=resampling)


def _by_path(files: dict[str, tuple[str, int]], names: list[str] | tuple[str, ...]) -> dict[str, list]:
    """Group (channel, band index) pairs by file."""
    out: dict[str, list[tuple[int, int]]] = {}
    for c, band in enumerate(names):
        if band in files:
            path, idx = files[band]
            out.setdefault(path, []).append((c, idx))
    return out


def read_chips(
    item: RasterItem, specs: list[ChipSpec], mode: str, files: OpenFiles | None = None
) -> np.ndarray:
    """Read the chips of one item: (n, C, H, W) float32 physical values, NaN = no data.

    Bands the item lacks are all-NaN channels (missing channels, not zeros). Pixels flagged
    by the item's quality-mask bands become NaN. Files come from ``files`` (kept open by the
    caller, e.g. one :class:`OpenFiles` per reader thread); without it each file is opened
    once for this call.

    Raises:
        RasterError: when a band file cannot be read.
    """
    own = files is None
    opened = OpenFiles() if files is None else files
    try:
        return _read_chips(item, specs, mode, opened)
    finally:
        if own:
            opened.close()


def _grid_key(src: rasterio.DatasetReader) -> tuple:
    return (src.crs.to_wkt() if src.crs else None, tuple(src.transform))


def _read_chips(item: RasterItem, specs: list[ChipSpec], mode: str, files: OpenFiles) -> np.ndarray:
    s = item.sensor
    px = s.chip_px
    geom = item_geometry(item)
    grids = chip_grids(item, geom, specs, mode)
    out = np.full((len(specs), len(s.bands), px, px), np.nan, dtype=np.float32)
    caches: dict = {}  # direct-read decisions per file grid (band files often share one)
    for path, pairs in _by_path(item.band_files, s.band_names).items():
        chans = [c for c, _ in pairs]
        idxs = [i for _, i in pairs]
        with files.use(path) as src:
            nodata = src.nodata if src.nodata is not None else s.nodata
            cache = caches.setdefault(_grid_key(src), {})
            for i, (spec, grid) in enumerate(zip(specs, grids, strict=True)):
                out[i, chans] = _read_one(src, idxs, spec, grid, mode, s.chip_size_m, nodata, None, cache)
    mask_names = list(item.mask_files)
    if mask_names:
        masks = np.full((len(specs), len(mask_names), px, px), np.nan, dtype=np.float32)
        for path, pairs in _by_path(item.mask_files, mask_names).items():
            chans = [c for c, _ in pairs]
            idxs = [i for _, i in pairs]
            with files.use(path) as src:
                cache = caches.setdefault(_grid_key(src), {})
                for i, (spec, grid) in enumerate(zip(specs, grids, strict=True)):
                    masks[i, chans] = _read_one(
                        src, idxs, spec, grid, mode, s.chip_size_m, None, Resampling.nearest, cache
                    )
        mask_chips(out, {m: masks[:, k] for k, m in enumerate(mask_names)}, s)
    if s.nodata is not None:
        out[out == s.nodata] = np.nan
    out *= np.float32(s.scale)
    out += np.float32(s.offset)
    return out

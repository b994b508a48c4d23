"""Whole-Earth layers (Blue Marble, ETOPO, Koppen, MODIS IGBP, GLOBE land mask) as chip sources.

The layer files and their roles are data in ``layers.json`` beside this module; the
sensor facts of the input layers (bands, wavelengths, scaling) are presets in ``sensors.json``
(``bluemarble``, ``etopo``, ``koppen``). :class:`GlobalLayers` loads each layer once, lazily,
into a :class:`~embedder.globe.grid.LatLonRaster` and cuts aligned multimodal chips for any
set of points (H3 cell centres) in one vectorised gather per layer::

    layers = GlobalLayers()                      # data/global under the repo root
    batch = layers.chips(lat, lon)               # ChipBatch: optical, elevation, climate
    land = layers.is_land(lat, lon, ring_deg=0.08)

The MODIS land cover is a label layer only (see :mod:`embedder.globe.labels`): it is never
part of a chip.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from embedder.batch import ChipBatch, ModalityBatch
from embedder.datapath import data_dir
from embedder.errors import InputNotFoundError, RasterError
from embedder.globe.grid import NEAREST, ChipGrid, LatLonRaster, block_reduce_sum
from embedder.sensors import Sensor, get_sensor

GLOBAL_DIR_ENV = "EARTHVEC_GLOBAL_DATA"
DEFAULT_GLOBAL_DIR = Path("data") / "global"
METRES_PER_DEGREE = 111_320.0
INPUT, LABEL, MASK = "input", "label", "mask"


def repo_root() -> Path:
    """The folder holding the data folder (relative layer paths in ``sources`` start there)."""
    return data_dir(must_exist=False).resolve().parent


def default_global_dir() -> Path:
    """``$EARTHVEC_GLOBAL_DATA`` when set, else ``global/`` in the data folder (:func:`data_dir`)."""
    env = os.environ.get(GLOBAL_DIR_ENV)
    return Path(env) if env else data_dir(must_exist=False) / DEFAULT_GLOBAL_DIR.name


@lru_cache(maxsize=1)
def layer_table() -> dict[str, dict[str, Any]]:
    """The layer specs of ``layers.json`` keyed by layer name (``_`` keys dropped)."""
    text = resources.files("embedder.globe").joinpath("layers.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def input_layers() -> list[str]:
    """Names of the chip layers, which are also their modality names."""
    return [k for k, v in layer_table().items() if v["role"] == INPUT]


def chip_grid_for(sensor: Sensor) -> ChipGrid:
    """The chip grid a sensor preset asks for (``chip_px`` samples of ``chip_gsd_m``)."""
    return ChipGrid(px=sensor.chip_px, window_deg=sensor.chip_px * sensor.chip_gsd_m / METRES_PER_DEGREE)


def value_lut(sensor: Sensor) -> np.ndarray:
    """Physical value of every uint8 raw code under a sensor preset (NaN for nodata)."""
    raw = np.arange(256, dtype=np.uint8)[None, :, None]
    return _decode(sensor, sensor.to_physical(raw)).reshape(256)


def _decode(sensor: Sensor, physical: np.ndarray) -> np.ndarray:
    gamma = sensor.extra.get("gamma")
    if gamma is None:
        return physical
    with np.errstate(invalid="ignore"):
        return np.power(np.clip(physical, 0.0, None), np.float32(gamma)).astype(np.float32)


def _implicit_grid(h: int, w: int) -> tuple[float, float, float, float]:
    dlat, dlon = -180.0 / h, 360.0 / w
    return 90.0 + dlat / 2, dlat, -180.0 + dlon / 2, dlon


def _read_rasterio(path: Path, spec: dict[str, Any], sensor: Sensor | None) -> LatLonRaster:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning

    step = int(spec.get("decimate", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            h, w = ds.height // step, ds.width // step
            data = ds.read(out_shape=(ds.count, h, w), resampling=Resampling.nearest)
            georef = ds.crs is not None
            t = ds.transform
    if georef:
        dlat, dlon = t.e * ds.height / h, t.a * ds.width / w
        lat0, lon0 = t.f + dlat / 2, t.c + dlon / 2
    else:
        lat0, dlat, lon0, dlon = _implicit_grid(h, w)
    return _raster(data, lat0, dlat, lon0, dlon, sensor)


def _read_text_grid(path: Path, spec: dict[str, Any], sensor: Sensor | None) -> LatLonRaster:
    def load(p: Path) -> np.ndarray:
        with gzip.open(p) if p.suffix == ".gz" else open(p, "rb") as f:
            return np.loadtxt(f, dtype=np.float64)

    data = load(path)
    lats = load(path.parent / spec["lats_file"])
    lons = load(path.parent / spec["lons_file"])
    if data.shape != (lats.size, lons.size):
        raise RasterError(
            f"{path}: grid shape {data.shape} does not match {lats.size} lats x {lons.size} lons; "
            "the three text files must come from one grid"
        )
    if abs(lons[-1] - lons[0] - 360.0) < 1e-3:  # last column repeats the first
        data, lons = data[:, :-1], lons[:-1]
    lons = (lons + 180.0) % 360.0 - 180.0
    order = np.argsort(lons, kind="stable")
    data, lons = data[:, order], lons[order]  # roll to -180..180
    dlat = (lats[-1] - lats[0]) / (lats.size - 1)
    dlon = 360.0 / lons.size
    lon0 = -180.0 + (float(lons[0]) + 180.0) % dlon
    return _raster(data[None], float(lats[0]), float(dlat), lon0, dlon, sensor)


def _read_npz_mask(path: Path, spec: dict[str, Any], sensor: Sensor | None) -> LatLonRaster:
    """Stream a huge bool matrix from an .npz in row blocks into a block-count grid."""
    k = int(spec["block"])
    if not 1 <= k * k <= 255:
        raise RasterError(f"{path}: mask block {k} must satisfy k*k <= 255 (counts are uint8)")
    with zipfile.ZipFile(path) as zf, zf.open(f"{spec['array']}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        if fortran or np.dtype(dtype) != np.bool_ or len(shape) != 2:
            raise RasterError(f"{path}: expected a C-ordered 2-D bool mask, got {dtype} {shape}")
        h, w = shape
        if h % k or w % k:
            raise RasterError(f"{path}: mask shape {shape} does not divide into {k} x {k} blocks")
        counts = np.empty((h // k, w // k), dtype=np.uint8)
        rows = k * max(1, 600 // k)  # ~26 MB of mask per read
        for r in range(0, h, rows):
            n = min(rows, h - r)
            block = np.frombuffer(f.read(n * w), dtype=np.uint8).reshape(n, w)
            counts[r // k : (r + n) // k] = block_reduce_sum(block, k)  # k*k <= 255
    if spec.get("mask_true_is") == "ocean":
        counts = np.uint8(k * k) - counts
    lut = np.full(256, np.nan, dtype=np.float32)
    lut[: k * k + 1] = np.arange(k * k + 1, dtype=np.float32) / (k * k)
    lat0, dlat, lon0, dlon = _implicit_grid(h // k, w // k)
    return LatLonRaster(counts[None], lat0, dlat, lon0, dlon, lut=lut)


def _raster(
    data: np.ndarray, lat0: float, dlat: float, lon0: float, dlon: float, sensor: Sensor | None
) -> LatLonRaster:
    if sensor is None:  # label layers keep raw codes
        return LatLonRaster(data, lat0, dlat, lon0, dlon)
    if data.dtype == np.uint8:
        return LatLonRaster(data, lat0, dlat, lon0, dlon, lut=value_lut(sensor))
    return LatLonRaster(_decode(sensor, sensor.to_physical(data)), lat0, dlat, lon0, dlon)


READERS: dict[str, Callable[[Path, dict[str, Any], Sensor | None], LatLonRaster]] = {
    "image": _read_rasterio,
    "geotiff": _read_rasterio,
    "text_grid": _read_text_grid,
    "npz_mask": _read_npz_mask,
}


class GlobalLayers:
    """Lazily loaded whole-Earth layers under one folder.

    Args:
        root: folder holding the layer files; default :func:`default_global_dir`.
        grid: chip grid; default from the optical sensor preset (16 x 16 px over 1 degree).

    Raises:
        InputNotFoundError: when ``root`` or a layer file is missing.
    """

    def __init__(self, root: str | Path | None = None, grid: ChipGrid | None = None) -> None:
        self.root = Path(root) if root is not None else default_global_dir()
        if not self.root.is_dir():
            raise InputNotFoundError(
                f"global layer folder {self.root} does not exist; copy the global layers there "
                f"or pass root= (or set ${GLOBAL_DIR_ENV})"
            )
        self.specs = layer_table()
        self.grid = grid or chip_grid_for(self.sensor("optical"))
        self._rasters: dict[str, LatLonRaster] = {}

    def sensor(self, name: str) -> Sensor:
        """The sensor preset of input layer ``name``."""
        return get_sensor(self.specs[name]["sensor"])

    def path(self, name: str) -> Path:
        """Main file of layer ``name``."""
        p = self.root / self.specs[name]["file"]
        if not p.exists():
            raise InputNotFoundError(f"global layer {name!r} needs {p}, which does not exist")
        return p

    def files(self, names: list[str] | None = None) -> list[str]:
        """Files of the given layers (default the input layers) for the ``source`` column.

        Paths are relative to the repository root when the layers live under it (e.g.
        ``data/global/bmng.jpg``), else absolute.
        """
        out = []
        for n in names or input_layers():
            p = (self.root / self.specs[n]["file"]).resolve()
            try:
                out.append(p.relative_to(repo_root()).as_posix())
            except ValueError:
                out.append(p.as_posix())
        return out

    def raster(self, name: str) -> LatLonRaster:
        """Layer ``name`` loaded (once) as a :class:`LatLonRaster`."""
        if name not in self._rasters:
            spec = self.specs[name]
            sensor = self.sensor(name) if spec["role"] == INPUT else None
            self._rasters[name] = READERS[spec["format"]](self.path(name), spec, sensor)
        return self._rasters[name]

    def load_all(self, names: list[str] | None = None) -> None:
        """Load the given layers now (default all), e.g. before forking workers."""
        for n in names or list(self.specs):
            self.raster(n)

    def prepare(self) -> None:
        """Load every layer and the bilinear tables now (before forking workers)."""
        self.load_all()
        for name in input_layers():
            if self.specs[name]["method"] != NEAREST:
                _ = self.raster(name).pixels

    def chips(self, lat: np.ndarray, lon: np.ndarray, modalities: list[str] | None = None) -> ChipBatch:
        """Aligned chips centred on each point, one modality per input layer.

        Args:
            lat: (N,) latitudes of chip centres.
            lon: (N,) longitudes of chip centres.
            modalities: input layers to cut (default all).

        Returns:
            A :class:`ChipBatch` with float32 (N, C, px, px) physical values, NaN for nodata.
        """
        lat_rows, lon_cols = self.grid.windows(lat, lon)
        out: dict[str, ModalityBatch] = {}
        for name in modalities or input_layers():
            sensor = self.sensor(name)
            data = self.raster(name).sample_windows(lat_rows, lon_cols, self.specs[name]["method"])
            wl = np.array(
                [np.nan if b.wavelength_nm is None else b.wavelength_nm for b in sensor.bands],
                dtype=np.float64,
            )
            present = np.isfinite(data).reshape(len(data), -1).any(axis=1)
            out[name] = ModalityBatch(sensor.name, sensor.band_names, wl, data, present)
        return ChipBatch(out)

    def values(self, name: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Values (N, C) of layer ``name`` at points, with its own sampling method."""
        return self.raster(name).sample_points(lat, lon, self.specs[name]["method"])

    def land_fraction(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Share of land in the land-mask pixel under each point, (N,) float32."""
        return self.raster("land").sample_points(lat, lon, NEAREST)[:, 0]

    def is_land(self, lat: np.ndarray, lon: np.ndarray, ring_deg: float = 0.0) -> np.ndarray:
        """True where any land lies within ``ring_deg`` (ground degrees) of the point.

        ``ring_deg=0`` tests the mask pixel under the point; a ring about the cell radius
        keeps coastal cells whose centre falls in the sea.
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        mask = self.raster("land")
        step = abs(mask.dlat)
        n = int(np.ceil(ring_deg / step))
        off = np.arange(-n, n + 1, dtype=np.float64) * step
        stretch = 1.0 / np.maximum(np.cos(np.radians(lat)), 0.05)
        rows = np.clip(lat[:, None] + off[None, :], -90.0, 90.0)
        cols = lon[:, None] + off[None, :] * stretch[:, None]
        frac = mask.sample_windows(rows, cols, NEAREST).reshape(len(lat), -1)
        return np.asarray(np.nanmax(frac, axis=1) > 0, dtype=bool)


def layers_under(root: str | Path | None = None) -> GlobalLayers:
    """Global layers from a data folder (``<root>/global``) or the layer folder itself."""
    if root is None:
        return GlobalLayers()
    p = Path(root)
    return GlobalLayers(p / "global" if (p / "global").is_dir() else p)


def random_land_points(
    layers: GlobalLayers, n: int, seed: int = 0, res: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` distinct land cells drawn uniformly by area: (cells uint64, lat, lon) of centres.

    Points are drawn uniformly on the sphere, kept where the land mask has land, and
    snapped to the centre of their H3 cell at ``res``.
    """
    import h3.api.basic_int as h3i

    rng = np.random.default_rng(seed)
    found: dict[int, tuple[float, float]] = {}
    while len(found) < n:
        m = max(4 * (n - len(found)), 1024)
        lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, m)))
        lon = rng.uniform(-180.0, 180.0, m)
        keep = layers.is_land(lat, lon)
        for a, b in zip(lat[keep].tolist(), lon[keep].tolist(), strict=True):
            c = h3i.latlng_to_cell(a, b, res)
            if c not in found:
                found[c] = h3i.cell_to_latlng(c)
            if len(found) == n:
                break
    cells = np.array(list(found), dtype=np.uint64)
    pts = np.array(list(found.values()), dtype=np.float64).reshape(-1, 2)
    return cells, pts[:, 0], pts[:, 1]


def training_chip_batch(
    root: str | Path | None = None, n: int = 4096, seed: int = 0, res: int = 5
) -> ChipBatch:
    """Multimodal chips of ``n`` random land cells (uniform by area) for self-supervised training.

    Args:
        root: the data folder holding ``global/`` (or the layer folder itself); default
            ``data/global`` under the repository root.
        n: number of chips.
        seed: sampling seed (same seed, same chips).
        res: H3 resolution whose cell centres the chips are centred on.
    """
    layers = layers_under(root)
    _, lat, lon = random_land_points(layers, n, seed, res)
    return layers.chips(lat, lon)

"""Real training and evaluation data for the multimodal embedder (numpy + rasterio, no torch).

Sources, all read from the data folder (:func:`embedder.datapath.data_dir`: ``--data``,
``$EARTHVEC_DATA`` or the checkout's ``data/``):

* EuroSAT-MS chips (13-band Sentinel-2 L1C, 64x64, labelled by ``manifest.csv``);
* BigEarthNet Sentinel-1/Sentinel-2 patch pairs (120x120 at 10 m; 20 m and 60 m bands are
  repeated to 10 m), cut into random aligned 64x64 crops;
* a Landsat-8 L1 scene (reflective bands at 30 m), cut into random 64x64 crops.

Everything is returned in physical units as :class:`~embedder.batch.ChipBatch` objects.
"""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from embedder.batch import ChipBatch, ModalityBatch
from embedder.datapath import data_dir
from embedder.errors import InputNotFoundError
from embedder.sensors import Sensor, get_sensor

EUROSAT_SENSOR = "sentinel2-l1c-eurosat"
BEN_S2_SENSOR = "sentinel2-l2a-bigearthnet"
BEN_S1_SENSOR = "sentinel1-grd"
LANDSAT_SENSOR = "landsat8-l1"
# Landsat bands used for training: the reflective ones at 30 m (pan B8 is 15 m, B10/B11 thermal)
LANDSAT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9")
CHIP_PX = 64


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise InputNotFoundError(
            f"{what} not found at {str(path)!r}; the project's data/ folder is incomplete"
        )
    return path


def modality_batch(sensor: Sensor, data: np.ndarray, bands: tuple[str, ...] | None = None) -> ModalityBatch:
    """Wrap an (N, C, H, W) physical array of ``sensor`` as a modality batch (all present)."""
    names = bands if bands is not None else sensor.band_names
    nm = [sensor.band(b).wavelength_nm for b in names]
    wl = np.array(
        [np.nan if w is None else float(w) for w in nm],
        dtype=np.float32,
    )
    present = np.isfinite(data).reshape(len(data), -1).any(axis=1)
    return ModalityBatch(sensor.name, tuple(names), wl, data.astype(np.float32, copy=False), present)


@dataclass
class LabelledChips:
    """Labelled chips with their locations (for probes and spatially blocked CV).

    Attributes:
        batch: the chips.
        labels: class name per chip.
        lat: chip centre latitudes.
        lon: chip centre longitudes.
        paths: file path per chip, relative to the data set folder.
    """

    batch: ChipBatch
    labels: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    paths: list[str]


def load_eurosat(root: str | Path | None = None) -> LabelledChips:
    """All EuroSAT-MS chips listed in ``eurosat_ms/manifest.csv``, in manifest order.

    Raises:
        InputNotFoundError: when the manifest or a chip file is missing.
    """
    folder = data_dir(root) / "eurosat_ms"
    manifest = _need(folder / "manifest.csv", "EuroSAT manifest")
    sensor = get_sensor(EUROSAT_SENSOR)
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    chips = []
    for r in rows:
        with rasterio.open(_need(folder / r["path"], "EuroSAT chip")) as src:
            chips.append(sensor.to_physical(src.read()))
    data = np.stack(chips)
    return LabelledChips(
        batch=ChipBatch({"optical": modality_batch(sensor, data)}),
        labels=np.array([r["label"] for r in rows]),
        lat=np.array([float(r["center_lat"]) for r in rows]),
        lon=np.array([float(r["center_lon"]) for r in rows]),
        paths=[r["path"] for r in rows],
    )


def _read_band_to(path: str, size: int) -> np.ndarray:
    with rasterio.open(path) as src:
        a = src.read(1)
    rep = size // a.shape[0]
    return np.repeat(np.repeat(a, rep, axis=0), rep, axis=1) if rep > 1 else a


@dataclass
class PairedScenes:
    """Co-registered multi-modal scenes to cut crops from.

    Attributes:
        arrays: modality -> list of (C, H, W) physical arrays, one per scene.
        sensors: modality -> sensor preset name.
        bands: modality -> band names.
        labels: per-scene label lists (may be empty lists).
    """

    arrays: dict[str, list[np.ndarray]]
    sensors: dict[str, str]
    bands: dict[str, tuple[str, ...]]
    labels: list[list[str]]


def load_bigearthnet(root: str | Path | None = None) -> PairedScenes:
    """The BigEarthNet S1/S2 pairs at 10 m (S2 bands upsampled by repetition).

    Raises:
        InputNotFoundError: when the folder holds no pairs.
    """
    folder = data_dir(root) / "bigearthnet_s1s2"
    s2_dirs = sorted(glob.glob(str(folder / "S2" / "*")))
    s1_by_key = {"_".join(Path(d).name.split("_")[-2:]): d for d in glob.glob(str(folder / "S1" / "*"))}
    s2s, s1s, labels = [], [], []
    s2 = get_sensor(BEN_S2_SENSOR)
    s1 = get_sensor(BEN_S1_SENSOR)
    import json

    for d in s2_dirs:
        key = "_".join(Path(d).name.split("_")[-2:])
        if key not in s1_by_key:
            continue
        name2 = Path(d).name
        raw2 = np.stack([_read_band_to(f"{d}/{name2}_{b}.tif", 120) for b in s2.band_names])
        d1 = s1_by_key[key]
        name1 = Path(d1).name
        raw1 = np.stack([_read_band_to(f"{d1}/{name1}_{b}.tif", 120) for b in s1.band_names])
        s2s.append(s2.to_physical(raw2))
        s1s.append(s1.to_physical(raw1))
        meta = Path(f"{d}/{name2}_labels_metadata.json")
        labels.append(json.loads(meta.read_text()).get("labels", []) if meta.exists() else [])
    if not s2s:
        raise InputNotFoundError(f"no S1/S2 pairs found under {str(folder)!r}")
    return PairedScenes(
        arrays={"optical": s2s, "sar": s1s},
        sensors={"optical": BEN_S2_SENSOR, "sar": BEN_S1_SENSOR},
        bands={"optical": s2.band_names, "sar": s1.band_names},
        labels=labels,
    )


def load_landsat(root: str | Path | None = None) -> PairedScenes:
    """The Landsat-8 scene's reflective 30 m bands as one optical scene.

    Raises:
        InputNotFoundError: when a band file is missing.
    """
    folder = data_dir(root) / "landsat8"
    sensor = get_sensor(LANDSAT_SENSOR, list(LANDSAT_BANDS))
    bands = []
    for b in LANDSAT_BANDS:
        with rasterio.open(_need(folder / f"l8_{b}.tif", "Landsat-8 band")) as src:
            bands.append(src.read(1))
    return PairedScenes(
        arrays={"optical": [sensor.to_physical(np.stack(bands))]},
        sensors={"optical": LANDSAT_SENSOR},
        bands={"optical": LANDSAT_BANDS},
        labels=[[]],
    )


def random_crops(scenes: PairedScenes, n: int, rng: np.random.Generator, size: int = CHIP_PX) -> ChipBatch:
    """``n`` random aligned ``size`` x ``size`` crops (same window in every modality)."""
    mods = list(scenes.arrays)
    n_scenes = len(scenes.arrays[mods[0]])
    which = rng.integers(0, n_scenes, size=n)
    out: dict[str, list[np.ndarray]] = {m: [] for m in mods}
    for s in which:
        h, w = scenes.arrays[mods[0]][s].shape[1:]
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
        for m in mods:
            out[m].append(scenes.arrays[m][s][:, y : y + size, x : x + size])
    return ChipBatch(
        {
            m: modality_batch(
                get_sensor(scenes.sensors[m], list(scenes.bands[m])), np.stack(out[m]), scenes.bands[m]
            )
            for m in mods
        }
    )

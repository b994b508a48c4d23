"""Sensor presets: band names, wavelengths, gsd, nodata, scaling and normalisation.

The facts live in ``sensors.json`` beside this module (data, not code branches). Generic
code asks this module for a :class:`Sensor` by name and never tests sensor names itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from embedder.errors import SensorError


@dataclass(frozen=True)
class Band:
    """One spectral or polarisation band of a sensor."""

    name: str
    wavelength_nm: float | None
    gsd_m: float
    mean: float
    std: float


@dataclass(frozen=True)
class Sensor:
    """A sensor preset: how to read, scale and normalise its files."""

    name: str
    title: str
    modality: str
    layout: str
    bands: tuple[Band, ...]
    chip_px: int
    chip_gsd_m: float
    nodata: float | None
    scale: float
    offset: float
    band_suffix_regex: str | None = None
    datetime_regex: str | None = None
    datetime_format: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band names in file order."""
        return tuple(b.name for b in self.bands)

    @property
    def chip_size_m(self) -> float:
        """Side of a chip in metres."""
        return self.chip_px * self.chip_gsd_m

    def band(self, name: str) -> Band:
        """Return the band called ``name``.

        Raises:
            SensorError: if the sensor has no such band.
        """
        for b in self.bands:
            if b.name == name:
                return b
        raise SensorError(
            f"sensor {self.name!r} has no band {name!r}; its bands are {', '.join(self.band_names)}"
        )

    def with_bands(self, names: list[str] | tuple[str, ...]) -> Sensor:
        """Return a copy whose file band order is ``names`` (the ``--bands`` override)."""
        return replace(self, bands=tuple(self.band(n) for n in names))

    def to_physical(self, raw: np.ndarray) -> np.ndarray:
        """Scale raw values (C, H, W) to physical units as float32, nodata to NaN."""
        out = raw.astype(np.float32, copy=True)
        if self.nodata is not None:
            out[raw == self.nodata] = np.nan
        out[~np.isfinite(out)] = np.nan
        out *= np.float32(self.scale)
        out += np.float32(self.offset)
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-able description, stored in Parquet metadata as provenance."""
        return {
            "name": self.name,
            "modality": self.modality,
            "bands": [b.__dict__ for b in self.bands],
            "chip_px": self.chip_px,
            "chip_gsd_m": self.chip_gsd_m,
            "nodata": self.nodata,
            "scale": self.scale,
            "offset": self.offset,
        }


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("embedder").joinpath("sensors.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def sensor_names() -> list[str]:
    """Names of all sensor presets."""
    return sorted(_table())


def get_sensor(name: str, bands: list[str] | None = None) -> Sensor:
    """Look up a sensor preset by name.

    Args:
        name: preset name, e.g. ``"sentinel2-l1c-eurosat"``.
        bands: optional band order overriding the preset's file order.

    Raises:
        SensorError: for an unknown preset or band.
    """
    table = _table()
    if name not in table:
        raise SensorError(f"unknown sensor preset {name!r}; choose one of: {', '.join(sensor_names())}")
    row = dict(table[name])
    band_rows = row.pop("bands")
    known = {f for f in Sensor.__dataclass_fields__ if f not in ("name", "bands", "extra")}
    kwargs = {k: row.pop(k) for k in list(row) if k in known}
    sensor = Sensor(
        name=name,
        bands=tuple(Band(**b) for b in band_rows),
        extra=row,
        **kwargs,
    )
    return sensor.with_bands(bands) if bands else sensor


def all_wavelengths() -> dict[str, float]:
    """Band name -> wavelength for every optical band of every preset (for model stems)."""
    out: dict[str, float] = {}
    for name in sensor_names():
        for b in get_sensor(name).bands:
            if b.wavelength_nm is not None:
                out[f"{name}:{b.name}"] = float(b.wavelength_nm)
    return out

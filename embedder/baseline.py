"""The channel-statistics baseline embedder (numpy only, deterministic).

For every canonical band slot it computes the mean and standard deviation of the
standardised pixel values over valid pixels; the vector is their concatenation, L2
normalised. Optical bands of any sensor map to the nearest Sentinel-2 wavelength slot
(within 40 nm), so Landsat and Sentinel-2 share slots. Slots a chip lacks stay 0, which
after standardisation is the population mean: this is the literature's "channel
statistics" baseline (86.6% kNN on EuroSAT), not a learned model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from embedder.batch import ChipBatch
from embedder.interface import register
from embedder.sensors import get_sensor, sensor_names
from embedder.vectors import config_hash, l2_normalise

OPTICAL_SLOTS_NM = (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)
SLOTS: dict[str, tuple[str, ...]] = {
    "optical": tuple(f"{w}nm" for w in OPTICAL_SLOTS_NM),
    "sar": ("VV", "VH"),
    "elevation": ("elevation",),
    "climate": ("climate",),
}
MAX_WAVELENGTH_GAP_NM = 40.0


def optical_slot(wavelength: float) -> int | None:
    """Index of the Sentinel-2 slot nearest ``wavelength`` (nm), or None if none is within 40 nm."""
    if not np.isfinite(wavelength):
        return None
    gaps = np.abs(np.asarray(OPTICAL_SLOTS_NM, dtype=float) - wavelength)
    j = int(np.argmin(gaps))
    return j if gaps[j] <= MAX_WAVELENGTH_GAP_NM else None


class ChannelStats:
    """Per-band mean and std over valid pixels, standardised by the sensor table."""

    name = "stats"
    fork_safe = True  # numpy only: global builds may fork worker processes around it

    def __init__(self) -> None:
        self._slots = [(m, s) for m, names in SLOTS.items() for s in names]
        self.dim = 2 * len(self._slots)
        self.version = config_hash(self.config(), self.normalisation())

    def config(self) -> dict[str, Any]:
        """Slots and matching rule (the whole configuration)."""
        return {"slots": SLOTS, "max_wavelength_gap_nm": MAX_WAVELENGTH_GAP_NM, "stats": ["mean", "std"]}

    def normalisation(self) -> dict[str, Any]:
        """The sensor table's band mean/std it standardises with (part of the version hash)."""
        return {name: {b.name: [b.mean, b.std] for b in get_sensor(name).bands} for name in sensor_names()}

    def _slot_index(self, modality: str, band: str, wavelength: float) -> int | None:
        names = SLOTS.get(modality)
        if names is None:
            return None
        if modality == "optical":
            j = optical_slot(wavelength)
            return None if j is None else self._slots.index((modality, names[j]))
        if len(names) == 1:
            return self._slots.index((modality, names[0]))
        return self._slots.index((modality, band)) if band in names else None

    def features(self, batch: ChipBatch) -> np.ndarray:
        """Unnormalised (N, dim) statistics, before L2 normalisation."""
        n = len(batch)
        out = np.zeros((n, self.dim), dtype=np.float32)
        k = len(self._slots)
        for modality, mb in batch.modalities.items():
            sensor = get_sensor(mb.sensor)
            for c, band in enumerate(mb.bands):
                j = self._slot_index(modality, band, float(mb.wavelengths[c]))
                if j is None:
                    continue
                b = sensor.band(band)
                z = (mb.data[:, c].reshape(n, -1) - b.mean) / b.std
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nanmean(z, axis=1)
                    std = np.nanstd(z, axis=1)
                ok = mb.present & np.isfinite(mean)
                out[ok, j] = mean[ok]
                out[ok, k + j] = std[ok]
        return out

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Unit-length channel statistics, shape (N, dim)."""
        return l2_normalise(self.features(batch))


@register("stats")
def _make_stats(**kwargs: Any) -> ChannelStats:
    return ChannelStats()

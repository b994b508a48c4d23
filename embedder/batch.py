"""In-memory chips handed to embedders: one array per modality plus masks.

Pixels are in physical units (reflectance, dB, metres ...) as float32, with NaN wherever
the input had no data: nodata is never silently replaced by zeros. A modality that is
absent for a chip has ``present=False`` and all-NaN pixels; a band that a sensor lacks is
simply not in ``bands`` (the embedder sees band names and wavelengths, so any subset works).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ModalityBatch:
    """Pixels of one modality for N chips.

    Attributes:
        sensor: sensor preset name the pixels came from.
        bands: band names along axis 1.
        wavelengths: central wavelength per band in nm (NaN where not optical).
        data: float32 array (N, C, H, W) in physical units, NaN for nodata.
        present: bool array (N,), False where the chip has no data of this modality.
    """

    sensor: str
    bands: tuple[str, ...]
    wavelengths: np.ndarray
    data: np.ndarray
    present: np.ndarray

    def __post_init__(self) -> None:
        if self.data.ndim != 4 or self.data.shape[1] != len(self.bands):
            raise ValueError(
                f"{self.sensor}: data shape {self.data.shape} does not match {len(self.bands)} bands"
            )
        if self.present.shape != (self.data.shape[0],):
            raise ValueError(f"{self.sensor}: present mask must have shape ({self.data.shape[0]},)")

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def select_bands(self, names: list[str] | tuple[str, ...]) -> ModalityBatch:
        """The same chips restricted to the given bands (in that order)."""
        idx = [self.bands.index(n) for n in names]
        return ModalityBatch(
            self.sensor, tuple(names), self.wavelengths[idx], self.data[:, idx], self.present
        )

    def take(self, rows: np.ndarray) -> ModalityBatch:
        """The chips at positions ``rows``."""
        return ModalityBatch(self.sensor, self.bands, self.wavelengths, self.data[rows], self.present[rows])


@dataclass
class ChipBatch:
    """N chips with any subset of modalities (keys: ``optical``, ``sar``, ``elevation`` ...)."""

    modalities: dict[str, ModalityBatch] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.modalities.values()))) if self.modalities else 0

    def take(self, rows: np.ndarray) -> ChipBatch:
        """The chips at positions ``rows``."""
        return ChipBatch({k: m.take(rows) for k, m in self.modalities.items()})

    def without(self, modality: str) -> ChipBatch:
        """The same chips with one modality removed (for missing-modality tests)."""
        return ChipBatch({k: m for k, m in self.modalities.items() if k != modality})


def valid_fraction(batch: ChipBatch) -> np.ndarray:
    """Share of finite pixel values per chip over the modalities each chip has."""
    n = len(batch)
    num = np.zeros(n, dtype=np.float64)
    den = np.zeros(n, dtype=np.float64)
    for m in batch.modalities.values():
        per = np.isfinite(m.data).reshape(n, -1)
        num += np.where(m.present, per.sum(axis=1), 0)
        den += np.where(m.present, per.shape[1], 0)
    return np.divide(num, den, out=np.zeros(n), where=den > 0).astype(np.float32)

"""Quality masks (Landsat ``BQA`` bits, Sentinel-2 ``SCL`` classes) read from the sensor table.

A sensor's ``masks`` entry in ``sensors.json`` names each mask band, how its file is found
(``suffix_regex`` for one-file-per-band layouts, ``aliases`` for band descriptions and STAC
asset keys) and which values flag a pixel as unusable: ``bits`` (bit fields with the values
that are invalid) or ``invalid_classes`` (categorical codes). Flagged pixels become NaN in
every band of the chip, so they lower ``valid_fraction``. No code here knows a sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.errors import SensorError
from embedder.sensors import Sensor


@dataclass(frozen=True)
class BitField:
    """A bit field of a QA band: ``width`` bits from bit ``start``; ``invalid`` values flag a pixel."""

    name: str
    start: int
    width: int
    invalid: tuple[int, ...]

    def flags(self, values: np.ndarray) -> np.ndarray:
        """True where this field holds an invalid value."""
        field = (values >> self.start) & ((1 << self.width) - 1)
        return np.isin(field, self.invalid)


@dataclass(frozen=True)
class MaskRule:
    """One quality-mask band of a sensor."""

    band: str
    suffix_regex: str | None
    aliases: tuple[str, ...]
    bits: tuple[BitField, ...]
    invalid_classes: tuple[int, ...]

    def flags(self, values: np.ndarray) -> np.ndarray:
        """True where the mask marks the pixel unusable (NaN mask values flag nothing)."""
        finite = np.isfinite(values)
        ints = np.where(finite, values, 0).astype(np.int64)
        out = np.isin(ints, self.invalid_classes) if self.invalid_classes else np.zeros(ints.shape, bool)
        for b in self.bits:
            out |= b.flags(ints)
        return out & finite


def mask_rules(sensor: Sensor) -> dict[str, MaskRule]:
    """The sensor's quality-mask bands by name (empty when it has none).

    Raises:
        SensorError: when the sensor table's ``masks`` entry is malformed.
    """
    rules: dict[str, MaskRule] = {}
    for band, spec in (sensor.extra.get("masks") or {}).items():
        try:
            bits = tuple(
                BitField(
                    str(b["name"]), int(b["start"]), int(b["width"]), tuple(int(v) for v in b["invalid"])
                )
                for b in spec.get("bits", [])
            )
            rules[band] = MaskRule(
                band=band,
                suffix_regex=spec.get("suffix_regex"),
                aliases=tuple(spec.get("aliases", [])),
                bits=bits,
                invalid_classes=tuple(int(v) for v in spec.get("invalid_classes", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SensorError(
                f"sensor {sensor.name!r}: mask {band!r} in sensors.json is malformed ({exc}); each bit "
                "field needs name, start, width and invalid"
            ) from exc
    return rules


def mask_chips(data: np.ndarray, masks: dict[str, np.ndarray], sensor: Sensor) -> np.ndarray:
    """Set every band to NaN where a mask flags the pixel (in place); returns the flag array.

    Args:
        data: (N, C, H, W) chips.
        masks: mask band name -> (N, H, W) raw mask values on the chip grid (NaN = not read).
        sensor: the sensor whose mask rules apply.
    """
    rules = mask_rules(sensor)
    flagged = np.zeros((data.shape[0], data.shape[2], data.shape[3]), dtype=bool)
    for name, values in masks.items():
        if name in rules:
            flagged |= rules[name].flags(values)
    data[np.broadcast_to(flagged[:, None], data.shape)] = np.nan
    return flagged

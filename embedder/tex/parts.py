"""Raw parts of an ``earthvec-tex`` vector, per modality, before scaling and balance.

A chip's vector is built from *parts*: the optical ``signature`` (foveated moments of the
13 Sentinel-2 wavelength slots in log reflectance), the optical ``texture`` (multi-scale
structure of the leading spectral components) and one part per other modality (``sar``,
``elevation``: moments plus texture of their standardised values; ``climate``: class
shares). This module computes them from pixels with the fitted pixel statistics; scaling,
whitening, cross-modal prediction and the part shares are applied in
:mod:`embedder.tex.model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedder.baseline import OPTICAL_SLOTS_NM, optical_slot
from embedder.batch import ChipBatch, ModalityBatch
from embedder.sensors import get_sensor
from embedder.tex.features import class_fractions, impute_slots, pooled_stats, texture

OPTICAL = "optical"
SIGNATURE, TEXTURE = "signature", "texture"
N_SLOTS = len(OPTICAL_SLOTS_NM)


@dataclass
class RawParts:
    """Unscaled parts of N chips.

    Attributes:
        values: part name -> (N, d) float32 (rows of chips without the part are zero).
        present: part name -> (N,) bool, which chips have the part measured.
        weight: part name -> (N,) factor on the part's share for each chip (1 where the part
            is absent or predicted): see :func:`texture_weight` and :func:`resolution_weight`.
    """

    values: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    weight: dict[str, np.ndarray]


def modality_specs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The non-optical modality specs of a model configuration."""
    return dict(config["modalities"])


def part_names(config: dict[str, Any]) -> list[str]:
    """Every part of the vector, in layout order."""
    return [SIGNATURE, TEXTURE, *modality_specs(config)]


def optical_slot_index(mb: ModalityBatch) -> list[int | None]:
    """The Sentinel-2 slot (by nearest wavelength, within 40 nm) of every band of ``mb``."""
    return [optical_slot(float(w)) for w in mb.wavelengths]


def optical_z(mb: ModalityBatch, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> np.ndarray:
    """Standardised log reflectance in all 13 slots, absent slots imputed: (N, 13, H, W).

    Bands that map to no slot are ignored; when two bands map to one slot the first wins.
    """
    n, _, h, w = mb.data.shape
    z = np.zeros((n, N_SLOTS, h, w), dtype=np.float32)
    have = np.zeros(N_SLOTS, dtype=bool)
    for c, j in enumerate(optical_slot_index(mb)):
        if j is None or have[j]:
            continue
        x = np.log(np.maximum(mb.data[:, c], 0.0) + config["optical_offset"])
        z[:, j] = (x - arrays["opt_mu"][j]) / arrays["opt_sd"][j]
        have[j] = True
    if not have.any():
        return np.full_like(z, np.nan)
    nan = np.asarray(~np.isfinite(z[:, have]).all(axis=1))  # a pixel missing in any present slot is missing
    z = impute_slots(z, have, arrays["opt_cov"])
    z[np.broadcast_to(nan[:, None], z.shape)] = np.nan
    return z


def components(z: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The leading spectral components of standardised slots: (N, K, H, W)."""
    return np.einsum("nshw,sk->nkhw", z, arrays["opt_pcs"].astype(np.float32))


def slot_values(mb: ModalityBatch, spec: dict[str, Any]) -> np.ndarray:
    """(N, S, H, W) values of a non-optical modality in its spec's slot order (NaN if absent)."""
    slots = spec["slots"]
    n, _, h, w = mb.data.shape
    out = np.full((n, len(slots), h, w), np.nan, dtype=np.float32)
    for j, name in enumerate(slots):
        if name in mb.bands:
            out[:, j] = mb.data[:, mb.bands.index(name)]
        elif len(slots) == 1 and len(mb.bands) == 1:
            out[:, j] = mb.data[:, 0]  # a one-band modality (elevation, climate) by any band name
    return out


def transform_values(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Values mapped by the spec's ``transform`` (``linear``, or ``asinh`` of ``x / scale``)."""
    kind = spec.get("transform", "linear")
    if kind == "asinh":
        return np.arcsinh(x / float(spec["scale"]))
    if kind == "linear":
        return x
    raise ValueError(f"unknown transform {kind!r} in the earthvec-tex configuration")


def modality_part(
    name: str, mb: ModalityBatch, arrays: dict[str, np.ndarray], config: dict[str, Any]
) -> np.ndarray:
    """Raw part of a non-optical modality: class shares, or moments plus texture."""
    spec = modality_specs(config)[name]
    x = slot_values(mb, spec)
    if spec.get("categorical"):
        return class_fractions(x, [int(c) for c in spec["classes"]])
    z = (transform_values(x, spec) - arrays[f"{name}_px_mu"][None, :, None, None]) / arrays[f"{name}_px_sd"][
        None, :, None, None
    ]
    return np.concatenate([pooled_stats(z), texture(z, config["levels"])], axis=1)


def texture_weight(side_px: int, config: dict[str, Any]) -> float:
    """Factor on the texture share for chips ``side_px`` pixels a side: ``sqrt(side / ref)``, at most 1.

    Measured on EuroSAT (spatial CV on the training split, chips average-pooled from 64 to
    16 px): the best texture share of 16 px chips is half that of 64 px chips; a small
    chip's pyramid has fewer and noisier levels.
    """
    ref = float(config["texture_reference_px"])
    return float(np.sqrt(min(float(side_px), ref) / ref))


def resolution_weight(mb: ModalityBatch) -> float:
    """Factor on a non-optical modality's share: chip sample spacing over the layer's own gsd, at most 1.

    A layer coarser than the chip grid (ETOPO's 37 km under 7 km chip pixels) says less
    about one place than its pixel count suggests; the facts come from the sensor table.
    """
    sensor = get_sensor(mb.sensor)
    native = min(sensor.band(b).gsd_m for b in mb.bands)
    return float(min(1.0, sensor.chip_gsd_m / native)) if native > 0 else 1.0


def raw_parts(batch: ChipBatch, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> RawParts:
    """Every raw part of every chip of ``batch`` (NaN-free; absent parts are zero rows)."""
    n = len(batch)
    dims = part_dims(config)
    values = {p: np.zeros((n, d), dtype=np.float32) for p, d in dims.items()}
    present = {p: np.zeros(n, dtype=bool) for p in dims}
    weight = {p: np.ones(n, dtype=np.float64) for p in dims}
    specs = modality_specs(config)
    for key, mb in batch.modalities.items():
        rows = np.flatnonzero(mb.present)
        if len(rows) == 0:
            continue
        sub = mb.take(rows)
        if key == OPTICAL:
            z = optical_z(sub, arrays, config)
            parts = {SIGNATURE: pooled_stats(z), TEXTURE: texture(components(z, arrays), config["levels"])}
            weight[TEXTURE][rows] = texture_weight(min(mb.data.shape[2:]), config)
        elif key in specs:
            parts = {key: modality_part(key, sub, arrays, config)}
            weight[key][rows] = resolution_weight(mb)
        else:
            continue  # a modality the model does not know contributes nothing
        for p, v in parts.items():
            ok = np.isfinite(v).any(axis=1)
            values[p][rows[ok]] = np.nan_to_num(v[ok], nan=0.0)
            present[p][rows[ok]] = True
    return RawParts(values, present, weight)


def part_dims(config: dict[str, Any]) -> dict[str, int]:
    """Length of every raw part under ``config``."""
    levels = int(config["levels"])
    dims = {SIGNATURE: 3 * N_SLOTS, TEXTURE: int(config["components"]) * levels * 3}
    for name, spec in modality_specs(config).items():
        s = len(spec["slots"])
        dims[name] = 2 * len(spec["classes"]) if spec.get("categorical") else 3 * s + s * levels * 3
    return dims

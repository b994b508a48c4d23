"""From a :class:`~embedder.batch.ChipBatch` to standardised model inputs, and training views.

Pixels are standardised with per-band mean/std (stored in the checkpoint), then NaN (nodata)
becomes 0 *after* standardisation while the validity map and band mask tell the network
which values are real, so nodata is never treated as data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from embedder.batch import ChipBatch, ModalityBatch
from embedder.model.net import ModalityInput
from embedder.sensors import get_sensor, sensor_names
from embedder.torchio import to_device

CLIP = 10.0  # standardised inputs are clipped to +-CLIP (rare sensor outliers)


def sensor_stats() -> dict[str, dict[str, list[float]]]:
    """Per-sensor, per-band ``[mean, std]`` of physical values from the sensor table."""
    return {
        name: {b.name: [float(b.mean), float(b.std)] for b in get_sensor(name).bands}
        for name in sensor_names()
    }


def _band_stats(mb: ModalityBatch, stats: dict[str, dict[str, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    table = stats.get(mb.sensor)
    if table is None or any(b not in table for b in mb.bands):
        sensor = get_sensor(mb.sensor)  # raises SensorError naming the preset / band
        rows = [[sensor.band(b).mean, sensor.band(b).std] for b in mb.bands]
    else:
        rows = [table[b] for b in mb.bands]
    arr = np.asarray(rows, dtype=np.float32)
    return arr[:, 0], arr[:, 1]


def to_input(
    modality: str,
    mb: ModalityBatch,
    stats: dict[str, dict[str, list[float]]],
    chip_px: int,
    device: torch.device | str = "cpu",
) -> ModalityInput:
    """Standardise one modality and build its masks (resized to ``chip_px`` if needed)."""
    mean, std = _band_stats(mb, stats)
    raw = to_device(mb.data, device)
    present_np = np.asarray(mb.present, dtype=bool)
    pres = torch.from_numpy(present_np).to(device)
    m = torch.from_numpy(mean).to(device)[None, :, None, None]
    inv = torch.from_numpy(1.0 / std).to(device)[None, :, None, None]
    x = (raw - m).mul_(inv).clamp_(-CLIP, CLIP)  # NaN stays NaN
    n, c = raw.shape[:2]
    # ChipBatch pixels are finite or NaN (nodata); one cheap scan decides the fast path
    if bool(pres.all()) and not bool(torch.isnan(raw).any()):  # every pixel of every band valid
        bm = torch.ones((n, c), dtype=x.dtype, device=x.device)
        valid = torch.ones((n, 1, *x.shape[-2:]), dtype=x.dtype, device=x.device)
        band_has = bm.bool()
    else:
        finite = torch.isfinite(raw) & pres[:, None, None, None]
        band_has = finite.flatten(2).any(dim=2)
        x = torch.where(finite, x, torch.zeros((), dtype=x.dtype, device=x.device))
        bm = band_has.to(x.dtype)
        valid = finite.sum(1, keepdim=True, dtype=x.dtype) / bm.sum(1).clamp(min=1.0)[:, None, None, None]
    if x.shape[-1] != chip_px or x.shape[-2] != chip_px:
        x = F.interpolate(x, size=(chip_px, chip_px), mode="bilinear", align_corners=False)
        valid = F.interpolate(valid, size=(chip_px, chip_px), mode="bilinear", align_corners=False)
    keys = tuple(f"{modality}:{b}" for b in mb.bands)
    present = pres & band_has.any(dim=1)
    wl = torch.from_numpy(np.asarray(mb.wavelengths, dtype=np.float32)).to(device)
    return ModalityInput(x, bm, valid, wl, keys, present)


def to_inputs(
    batch: ChipBatch,
    stats: dict[str, dict[str, list[float]]],
    chip_px: int,
    device: torch.device | str = "cpu",
) -> dict[str, ModalityInput]:
    """Model inputs for every modality of ``batch``."""
    return {m: to_input(m, mb, stats, chip_px, device) for m, mb in batch.modalities.items()}


def _affine(n: int, rng: np.random.Generator, crop: tuple[float, float]) -> np.ndarray:
    """Per-chip (2, 3) affine maps: random crop scale and offset, flip, 90-degree rotation."""
    scale = rng.uniform(crop[0], crop[1], size=n)
    tx = rng.uniform(-1, 1, size=n) * (1 - scale)
    ty = rng.uniform(-1, 1, size=n) * (1 - scale)
    k = rng.integers(0, 4, size=n)
    flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    cos = np.round(np.cos(k * np.pi / 2))
    sin = np.round(np.sin(k * np.pi / 2))
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = scale * cos * flip
    theta[:, 0, 1] = -scale * sin
    theta[:, 1, 0] = scale * sin * flip
    theta[:, 1, 1] = scale * cos
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    return theta


def augment(
    inputs: dict[str, ModalityInput],
    rng: np.random.Generator,
    band_keep_min: float = 0.4,
    drop_modality: float = 0.25,
    noise: float = 0.0,
    gain: float = 0.05,
    band_drop_p: float = 0.5,
    crop: tuple[float, float] = (0.35, 0.75),
    out_px: int = 32,
) -> tuple[dict[str, ModalityInput], dict[str, Any]]:
    """A random view of the chips for self-supervised training.

    The same crop/flip/rotation in every modality, then per-chip band dropout, modality
    dropout (chips keep at least one), gain and per-band shift.

    Crops cover ``crop`` (min, max) of the chip side and are resampled to ``out_px`` pixels;
    the network is fully convolutional with global pooling, so it trains on small views
    (4x cheaper at 32 px) and embeds full chips.

    Returns:
        ``(view, targets)``: the augmented inputs, and per modality the clean
        (un-dropped, noise-free) standardised pixels and finite mask after the spatial
        transform, as reconstruction targets.
    """
    first = next(iter(inputs.values()))
    n = first.x.shape[0]
    dev = first.x.device
    theta = torch.from_numpy(_affine(n, rng, crop)).to(dev)
    grid = F.affine_grid(theta, [n, 1, out_px, out_px], align_corners=False)
    mods = list(inputs)
    keep_mod = np.ones((n, len(mods)), dtype=bool)
    if len(mods) > 1:
        keep_mod = rng.random((n, len(mods))) >= drop_modality
        none = ~keep_mod.any(axis=1)
        keep_mod[none, rng.integers(0, len(mods), size=int(none.sum()))] = True
    view: dict[str, ModalityInput] = {}
    targets: dict[str, Any] = {}
    for j, m in enumerate(mods):
        inp = inputs[m]
        x = F.grid_sample(inp.x, grid.to(inp.x.dtype), mode="bilinear", align_corners=False)
        valid = F.grid_sample(inp.valid, grid.to(inp.x.dtype), mode="bilinear", align_corners=False)
        c = x.shape[1]
        keep = np.ones((n, c), dtype=bool)
        if c > 1:
            frac = rng.uniform(band_keep_min, 1.0, size=n)
            keep = rng.random((n, c)) < frac[:, None]
            keep[np.arange(n), rng.integers(0, c, size=n)] = True
            keep[rng.random(n) >= band_drop_p] = True
        bm = inp.band_mask * torch.from_numpy(keep).to(device=dev, dtype=x.dtype)
        scale = torch.from_numpy(rng.uniform(1 - gain, 1 + gain, size=(n, 1, 1, 1)).astype(np.float32)).to(
            dev
        )
        shift = torch.from_numpy(rng.normal(0.0, noise, size=(n, c, 1, 1)).astype(np.float32)).to(dev)
        targets[m] = {"x": x, "band_mask": inp.band_mask, "valid": valid}
        present = inp.present & torch.from_numpy(keep_mod[:, j]).to(dev)
        xa = (x * scale + shift) * bm[:, :, None, None] * (valid > 0).to(x.dtype)
        view[m] = ModalityInput(xa, bm, valid, inp.wavelengths, inp.keys, present)
    return view, targets

"""Chips to a pretrained model's input: required bands, nodata fill, resize, crop, normalise.

The steps follow the published transform in its order (torchgeo: ``Resize`` -> ``CenterCrop``
-> ``Normalize``), after two earthvec steps that the published pipelines do not need because
their inputs are complete: the required bands are picked by name (the file's band order does
not matter, a missing band is refused) and NaN pixels (nodata) inside a chip are replaced by
the mean of that band's valid pixels in the same chip, so they carry no made-up contrast.
The share of valid pixels is recorded per row (``valid_fraction``) by the build.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from embedder.batch import ChipBatch, ModalityBatch
from embedder.errors import MissingBandError
from embedder.pretrained.specs import InputSpec
from embedder.torchio import to_device


def optical(batch: ChipBatch, model: str, spec: InputSpec) -> ModalityBatch:
    """The batch's optical modality, checked to hold every band ``spec`` requires.

    Raises:
        MissingBandError: naming the missing band(s) and how to fix it.
    """
    need = ", ".join(spec.bands)
    mb = batch.modalities.get("optical")
    if mb is None:
        have = ", ".join(batch.modalities) or "none"
        raise MissingBandError(
            f"{model} embeds optical chips with the bands {need}; these chips have only {have} "
            "modalities; add a Sentinel-2 source or pick a model for them (e.g. --model earthvec-tex)"
        )
    missing = [b for b in spec.bands if b not in mb.bands]
    if missing:
        raise MissingBandError(
            f"{model} needs band(s) {', '.join(missing)}, which {mb.sensor!r} chips lack (they have "
            f"{', '.join(mb.bands)}); it cannot run with bands missing: give a source with all of "
            f"{need}, or name the file's band order with --bands if it holds them, or use a model "
            "that handles missing bands (--model earthvec-tex)"
        )
    return mb.select_bands(list(spec.bands))


def fill_nodata(data: np.ndarray, present: np.ndarray, model: str, bands: tuple[str, ...]) -> np.ndarray:
    """NaN pixels replaced by their chip-band mean; chips with no valid pixel are marked absent.

    Args:
        data: (N, C, H, W) float32 in physical units, NaN for nodata.
        present: (N,) bool, False where the chip has no data of this modality.
        model: the model's name (for messages).
        bands: band names along axis 1 (for messages).

    Returns:
        (N,) bool: chips that hold data (the others get zero vectors); ``data`` is filled in place.

    Raises:
        MissingBandError: a chip with valid pixels has none in some required band.
    """
    finite = np.isfinite(data)
    if finite.all():
        return present.copy()
    band_has = finite.any(axis=(2, 3))
    has = present & band_has.any(axis=1)
    lacking = has[:, None] & ~band_has
    if lacking.any():
        names = sorted({bands[c] for c in np.nonzero(lacking)[1]})
        raise MissingBandError(
            f"{int(lacking.any(axis=1).sum())} chip(s) have valid pixels but none in band(s) "
            f"{', '.join(names)}, which {model} needs; it cannot run with bands missing: drop "
            "those inputs or use a model that handles missing bands (--model earthvec-tex)"
        )
    sums = np.where(finite, data, 0.0).sum(axis=(2, 3), dtype=np.float64)
    means = (sums / np.maximum(finite.sum(axis=(2, 3)), 1)).astype(np.float32)
    np.copyto(data, np.broadcast_to(means[:, :, None, None], data.shape), where=~finite)
    data[~has] = 0.0
    return has


def resize_crop(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Bilinear resize of the short side to ``spec.resize``, then a centred ``spec.crop`` square."""
    h, w = x.shape[-2:]
    if (h, w) != (spec.resize, spec.resize):
        s = spec.resize / min(h, w)
        size = (
            (spec.resize, max(spec.resize, round(w * s)))
            if h <= w
            else (max(spec.resize, round(h * s)), spec.resize)
        )
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=spec.align_corners)
    h, w = x.shape[-2:]
    top, left = (h - spec.crop) // 2, (w - spec.crop) // 2
    return x[..., top : top + spec.crop, left : left + spec.crop]


def to_tensor(data: np.ndarray, spec: InputSpec, device: torch.device) -> torch.Tensor:
    """(N, C, H, W) physical values -> the normalised (N, C, crop, crop) model input on ``device``."""
    x = to_device(data, device)
    x = resize_crop(x * spec.units_per_physical, spec)
    mean = torch.tensor(spec.per_band(spec.mean), dtype=x.dtype, device=device)[None, :, None, None]
    std = torch.tensor(spec.per_band(spec.std), dtype=x.dtype, device=device)[None, :, None, None]
    return (x - mean) / std

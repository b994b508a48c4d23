"""The spectral-signature part of the embedding: per-slot band moments, observed or imputed.

A chip's signature is the valid-pixel mean and standard deviation of its standardised values
in a fixed set of *slots*: the 13 Sentinel-2 wavelengths (an optical band of any sensor goes
to the nearest one within 40 nm, as in the channel-statistics baseline) and one slot per
non-optical band key (SAR polarisations, elevation, climate). A slot the chip has is
measured; a slot it lacks (a missing band or a missing modality) is predicted from the
chip's learned vector by the model's moment head, which the MMEarth-style image-level
pretext task trains (predict every band's moments, also the dropped ones). So the signature
never pretends that a missing band sits at the population mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F  # noqa: N812

from embedder.baseline import OPTICAL_SLOTS_NM, optical_slot

if TYPE_CHECKING:
    from embedder.model.net import ModalityInput


def signature_slots(keyed: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Slot keys and wavelengths (nm; NaN for keyed slots) for a model's keyed bands."""
    keys = tuple(f"optical:{nm}nm" for nm in OPTICAL_SLOTS_NM) + tuple(keyed)
    wavelengths = tuple(float(nm) for nm in OPTICAL_SLOTS_NM) + (float("nan"),) * len(keyed)
    return keys, wavelengths


def slot_count(keyed: tuple[str, ...]) -> int:
    """Number of signature slots for a model's keyed bands."""
    return len(OPTICAL_SLOTS_NM) + len(keyed)


def band_slots(inp: ModalityInput, slot_keys: tuple[str, ...]) -> list[int | None]:
    """The slot of every band of ``inp`` (None for bands without one, e.g. thermal)."""
    index = {k: i for i, k in enumerate(slot_keys)}
    out: list[int | None] = []
    for key, wl in zip(inp.keys, inp.wavelengths.tolist(), strict=True):
        j = optical_slot(wl)
        out.append(j if j is not None else index.get(key))
    return out


def band_moments(
    inp: ModalityInput, token_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid-pixel mean and std of every band, each (N, C) (pixels under ``token_mask`` excluded)."""
    pw = inp.valid
    if token_mask is not None:
        hide = token_mask[:, None].to(pw.dtype)
        pw = pw * (1 - F.interpolate(hide, size=pw.shape[-2:], mode="nearest"))
    # weighted moments as batched mat-vec products (fast on CPU, no broadcast temporaries)
    x = inp.x.reshape(inp.x.shape[0], inp.x.shape[1], -1)
    w = pw.reshape(pw.shape[0], -1, 1)
    den = w.sum(dim=1).clamp(min=1e-6)
    mu = torch.bmm(x, w)[..., 0] / den
    ex2 = torch.bmm(x * x, w)[..., 0] / den
    return mu, torch.sqrt(torch.relu(ex2 - mu * mu) + 1e-6)


def observed_signature(
    inputs: dict[str, ModalityInput],
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]],
    slot_keys: tuple[str, ...],
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Measured slot moments: ``(mean, std, observed)``, each (N, S); bands sharing a slot average.

    ``moments`` holds every modality's per-band mean and std (:func:`band_moments`).
    """
    s = len(slot_keys)
    first = next(iter(inputs.values())).x
    tot_m = torch.zeros((n, s), dtype=first.dtype, device=first.device)
    tot_s = torch.zeros_like(tot_m)
    cnt = torch.zeros_like(tot_m)
    for m, inp in inputs.items():
        slots = band_slots(inp, slot_keys)
        cols = [c for c, j in enumerate(slots) if j is not None]
        if not cols:
            continue
        mu, sd = moments[m]
        target = torch.tensor([slots[c] for c in cols], device=first.device)
        sel = torch.tensor(cols, device=first.device)
        w = (inp.band_mask * inp.present[:, None].to(inp.band_mask.dtype))[:, sel]
        tot_m.index_add_(1, target, mu[:, sel] * w)
        tot_s.index_add_(1, target, sd[:, sel] * w)
        cnt.index_add_(1, target, w)
    seen = cnt > 0
    c = cnt.clamp(min=1.0)
    return tot_m / c, tot_s / c, seen

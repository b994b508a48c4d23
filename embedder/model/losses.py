"""The training objectives of the three seed papers, as plain functions over tensors."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from embedder.model.heads import GradReverse, Heads
from embedder.model.net import Encoded, ModalityInput, MultimodalNet

CLIP = 5.0  # reconstruction targets are clipped to +-CLIP standard deviations


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP loss) between matching rows of ``a`` and ``b``."""
    a = F.normalize(a, dim=1)
    b = F.normalize(b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def view_loss(heads: Heads, a: Encoded, b: Encoded, temperature: float) -> torch.Tensor:
    """Within-modality augmentation views: InfoNCE between projected fused vectors."""
    return info_nce(heads.projector(a.fused), heads.projector(b.fused), temperature)


def cross_modal_loss(enc: Encoded, shared_dim: int, temperature: float) -> torch.Tensor | None:
    """CLIP-style InfoNCE between the shared parts of every modality pair of the same chips."""
    mods = list(enc.per_modality)
    losses = []
    for i in range(len(mods)):
        for j in range(i + 1, len(mods)):
            both = enc.present[mods[i]] & enc.present[mods[j]]
            if int(both.sum()) < 2:
                continue
            za = enc.per_modality[mods[i]][both, :shared_dim]
            zb = enc.per_modality[mods[j]][both, :shared_dim]
            losses.append(info_nce(za, zb, temperature))
    return torch.stack(losses).mean() if losses else None


def colearn_loss(
    heads: Heads, encs: list[Encoded], modality_index: dict[str, int], shared_dim: int
) -> torch.Tensor | None:
    """Modality-discriminative co-learning.

    The specific part must reveal its modality (discriminator), the shared part must hide
    it (the same kind of discriminator behind gradient reversal), and the two parts are
    decorrelated over the batch.
    """
    spec, shared, target = [], [], []
    for enc in encs:
        for m, h in enc.per_modality.items():
            keep = enc.present[m]
            spec.append(h[keep, shared_dim:])
            shared.append(h[keep, :shared_dim])
            target.append(torch.full((int(keep.sum()),), modality_index[m], device=h.device))
    y = torch.cat(target)
    if len(torch.unique(y)) < 2:
        return None
    s, p = torch.cat(shared), torch.cat(spec)
    loss = F.cross_entropy(heads.disc_specific(p), y)
    loss = loss + F.cross_entropy(heads.disc_shared(GradReverse.apply(s)), y)
    sz = (s - s.mean(0)) / (s.std(0) + 1e-4)
    pz = (p - p.mean(0)) / (p.std(0) + 1e-4)
    corr = sz.T @ pz / len(s)
    return loss + (corr**2).mean()


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """Weighted Huber loss (robust to the rare extreme standardised values)."""
    den = weight.sum()
    if float(den) < 1:
        return None
    err = F.smooth_l1_loss(pred.float(), target.float().clamp(-CLIP, CLIP), reduction="none")
    return (err * weight).sum() / den


def _image_moments(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-band weighted mean and std over pixels (N, C), and where they are defined."""
    den = w.sum(dim=(2, 3))
    mean = (x * w).sum(dim=(2, 3)) / den.clamp(min=1.0)
    var = ((x - mean[:, :, None, None]) ** 2 * w).sum(dim=(2, 3)) / den.clamp(min=1.0)
    return mean, torch.sqrt(var + 1e-6), (den > 0).to(x.dtype)


def mae_loss(
    net: MultimodalNet,
    heads: Heads,
    enc: Encoded,
    view: dict[str, ModalityInput],
    targets: dict[str, Any],
    token_masks: dict[str, torch.Tensor],
    patch: int,
    w_image: float = 1.0,
) -> torch.Tensor | None:
    """Multi-pretext masked autoencoding (MMEarth style).

    From each modality's (masked) encoding: reconstruct its own hidden pixels (all bands,
    also the ones dropped from the input), predict every other modality's pixels at patch
    resolution, and predict every modality's per-band image mean and std (image-level
    targets, its own included: the vector must carry the chip's whole spectrum, also the
    bands it was not given). Only valid pixels count; image-level terms weigh ``w_image``.
    """
    dec = heads.decoder
    parts: list[torch.Tensor] = []
    for m, f1 in enc.maps.items():
        src = enc.present[m]
        if int(src.sum()) == 0:
            continue
        g = dec.features(m, f1)
        for t, tgt in targets.items():
            inp = view[t]
            x, bm, valid = tgt["x"], tgt["band_mask"], tgt["valid"]
            w = bm[:, :, None, None] * (valid > 0.5).to(x.dtype) * src[:, None, None, None].to(x.dtype)
            if t == m:
                up = dec.p
                hid = token_masks[m].to(x.dtype).repeat_interleave(up, 1).repeat_interleave(up, 2)
                pw = F.avg_pool2d(w, patch // up)
                px = F.avg_pool2d(x * w, patch // up) / pw.clamp(min=1e-6)
                pred = dec.pixels(g, inp.wavelengths, inp.keys)
                loss = _masked_mse(pred, px, (pw > 0.5).to(x.dtype) * hid[:, None])
            else:
                w = w * inp.present[:, None, None, None].to(x.dtype)
                tw = F.avg_pool2d(w, patch)
                tx = F.avg_pool2d(x * w, patch) / tw.clamp(min=1e-6)
                loss = _masked_mse(dec.patches(g, inp.wavelengths, inp.keys), tx, (tw > 0.5).to(x.dtype))
            if loss is not None:
                parts.append(loss)
            if w_image > 0:
                mean, std, ok = _image_moments(x, w)
                h = enc.per_modality[m]
                pm, ps = net.predict_moments(h, inp.wavelengths, inp.keys)
                for pred_i, tgt_i in ((pm, mean), (ps, std)):
                    li = _masked_mse(pred_i, tgt_i, ok)
                    if li is not None:
                        parts.append(w_image * li)
    return torch.stack(parts).mean() if parts else None

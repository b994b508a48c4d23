"""The multimodal network: wavelength-conditioned stems, per-modality conv encoders, fusion.

Each modality has its own small encoder (stem + two stride-2 conv stages + masked pooling) mapping
into one shared embedding space. The stem's filter for a band is generated from the band's
wavelength by a small hyper-network (optical: Sentinel-2, Landsat, RGB all use the same
weights) or looked up by band key (SAR polarisations, elevation, climate). Stem outputs are
averaged over the bands a chip actually has, so any band subset embeds with the same weights.
The chip embedding is the mean over the modalities a chip has (absent ones are masked out,
never zero-filled), split into a modality-shared and a modality-specific part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from embedder.errors import EarthvecError
from embedder.model.config import ModelConfig
from embedder.model.signature import band_moments, observed_signature, signature_slots

MIN_NM, MAX_NM = 400.0, 2500.0


@dataclass
class ModalityInput:
    """Standardised tensors of one modality.

    Attributes:
        x: (N, C, S, S) standardised values, 0 where no data and for bands not in band_mask.
        band_mask: (N, C) 1 where the chip has the band (and it is not dropped).
        valid: (N, 1, S, S) share of the chip's bands with data at each pixel.
        wavelengths: (C,) nm, NaN for non-optical bands.
        keys: ``modality:band`` per band.
        present: (N,) bool, chips that have this modality.
    """

    x: torch.Tensor
    band_mask: torch.Tensor
    valid: torch.Tensor
    wavelengths: torch.Tensor
    keys: tuple[str, ...]
    present: torch.Tensor


def fourier(wavelengths: torch.Tensor, n: int) -> torch.Tensor:
    """Fourier features of log-wavelength, shape (C, 2n + 1)."""
    t = (torch.log(wavelengths) - math.log(MIN_NM)) / (math.log(MAX_NM) - math.log(MIN_NM))
    freqs = (2.0 ** torch.arange(n, dtype=t.dtype, device=t.device)) * math.pi
    ang = t[:, None] * freqs[None, :]
    return torch.cat([t[:, None], torch.sin(ang), torch.cos(ang)], dim=1)


class BandFilters(nn.Module):
    """Per-band parameter vectors: generated from wavelength, or looked up by band key."""

    def __init__(self, cfg: ModelConfig, out: int) -> None:
        super().__init__()
        self.n_fourier = cfg.fourier_bands
        self.mlp = nn.Sequential(
            nn.Linear(2 * cfg.fourier_bands + 1, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, out)
        )
        self.keys = {k: i for i, k in enumerate(cfg.keyed_bands)}
        self.table = nn.Parameter(torch.randn(len(cfg.keyed_bands), out) * 0.05)
        self.out = out

    def forward(self, wavelengths: torch.Tensor, keys: tuple[str, ...]) -> torch.Tensor:
        """(C, out) parameters for the given bands."""
        finite = torch.isfinite(wavelengths)
        if bool(finite.all()):
            return self.mlp(fourier(wavelengths, self.n_fourier))
        missing = [k for k, f in zip(keys, finite.tolist(), strict=True) if not f and k not in self.keys]
        if missing:
            raise EarthvecError(
                f"the model has no filters for bands {missing}; known non-optical bands: "
                f"{', '.join(self.keys)}. Give optical bands a wavelength or retrain with this sensor preset"
            )
        rows = []
        for i, k in enumerate(keys):
            if finite[i]:
                rows.append(self.mlp(fourier(wavelengths[i : i + 1], self.n_fourier))[0])
            else:
                rows.append(self.table[self.keys[k]])
        return torch.stack(rows)


def spectral_width(cfg: ModelConfig) -> int:
    """Per-band parameters of the spectral branch: mean/std weights (and a bias when DeepSets)."""
    return 3 * cfg.spectral_hidden if cfg.spectral_hidden else 2 * cfg.spectral_dim


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()
    )


class ModalityEncoder(nn.Module):
    """Stem (band-set agnostic) + conv trunk + validity-weighted mean/std pooling."""

    def __init__(self, cfg: ModelConfig, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.p = cfg.patch
        self.d0 = cfg.stem_dim
        self.valid_conv = nn.Conv2d(1, cfg.stem_dim, cfg.patch, stride=cfg.patch)
        self.mask_token = nn.Parameter(torch.zeros(cfg.stem_dim))
        self.stem_norm = nn.Sequential(nn.BatchNorm2d(cfg.stem_dim), nn.GELU())
        self.stage1 = _conv(cfg.stem_dim, widths[0], 2)
        self.stage2 = _conv(widths[0], widths[1], 2)
        self.head = nn.Linear(2 * widths[1] + cfg.spectral_dim, cfg.embed_dim)
        self.spectral_dim = cfg.spectral_dim
        self.spectral_hidden = cfg.spectral_hidden
        if cfg.spectral_hidden:
            self.spectral_out = nn.Sequential(
                nn.LayerNorm(cfg.spectral_hidden), nn.Linear(cfg.spectral_hidden, cfg.spectral_dim)
            )

    def forward(
        self,
        inp: ModalityInput,
        filters: torch.Tensor,
        spectral: torch.Tensor,
        moments: tuple[torch.Tensor, torch.Tensor],
        token_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed one modality.

        Args:
            inp: the modality's standardised input.
            filters: (C, stem_dim * patch * patch) stem filters of its bands.
            spectral: (C, spectral_width(cfg)) per-band parameters of the spectral branch.
            moments: per-band (N, C) mean and std of the visible pixels (:func:`band_moments`).
            token_mask: optional (N, S/p, S/p) bool, True where stem tokens are hidden (MAE).

        Returns:
            ``(h, f1)``: (N, embed_dim) modality vectors and the (N, w0, S/2p, S/2p) first-stage map.
        """
        c = inp.x.shape[1]
        w = filters.view(c, self.d0, self.p, self.p).transpose(0, 1)
        bm = inp.band_mask.to(inp.x.dtype)
        # x is 0 wherever a band is missing or dropped, so the conv sums over present bands only
        y = F.conv2d(inp.x, w.contiguous(), stride=self.p)
        y = y / bm.sum(1).clamp(min=1.0)[:, None, None, None] + self.valid_conv(inp.valid)
        if token_mask is not None:
            m = token_mask[:, None].to(y.dtype)
            y = y * (1 - m) + self.mask_token[None, :, None, None] * m
        f1 = self.stage1(self.stem_norm(y))
        f3 = self.stage2(f1)
        wts = F.adaptive_avg_pool2d(inp.valid, f3.shape[-2:])
        if token_mask is not None:
            wts = wts * (1 - F.adaptive_avg_pool2d(token_mask[:, None].to(wts.dtype), f3.shape[-2:]))
        wts = wts / wts.sum(dim=(2, 3), keepdim=True).clamp(min=1e-6)
        mean = (f3 * wts).sum(dim=(2, 3))
        var = ((f3 - mean[:, :, None, None]) ** 2 * wts).sum(dim=(2, 3))
        h = self.head(torch.cat([mean, torch.sqrt(var + 1e-6), self._spectral(inp, spectral, *moments)], 1))
        return h, f1

    def _spectral(
        self, inp: ModalityInput, spectral: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor
    ) -> torch.Tensor:
        """Band-set agnostic spectral summary of a chip.

        Per-band valid-pixel mean and std, mapped by wavelength-generated weights and
        averaged over the bands present: linearly (``spectral_hidden == 0``), or as a
        DeepSets encoder (each band's moments go through its own wavelength-generated
        hidden layer, the band vectors are averaged, then a shared output layer), which
        can represent band ratios and any band subset with the same weights.
        """
        bm = inp.band_mask.to(mu.dtype)
        n_bands = bm.sum(1, keepdim=True).clamp(min=1.0)
        if self.spectral_hidden:
            h = self.spectral_hidden
            a, b, c = spectral[:, :h], spectral[:, h : 2 * h], spectral[:, 2 * h :]
            per_band = F.gelu(mu[:, :, None] * a + sd[:, :, None] * b + c)  # (N, C, h)
            pooled = (per_band * bm[:, :, None]).sum(1) / n_bands
            return self.spectral_out(pooled)
        k = self.spectral_dim
        out = (mu * bm) @ spectral[:, :k] + (sd * bm) @ spectral[:, k:]
        return out / n_bands


@dataclass
class Encoded:
    """Forward output: fused chip vectors and per-modality parts.

    Attributes:
        fused: (N, embed_dim) mean over present modalities (zeros for chips with none).
        per_modality: modality -> (N, embed_dim) vectors.
        maps: modality -> first-stage feature maps (for MAE decoders).
        present: modality -> (N,) bool.
        moments: modality -> per-band (N, C) mean and std of the visible pixels.
    """

    fused: torch.Tensor
    per_modality: dict[str, torch.Tensor]
    maps: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor]
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]]


class MultimodalNet(nn.Module):
    """One encoder per modality into a shared space, fused with a presence mask."""

    slot_wavelengths: torch.Tensor
    white_mean: torch.Tensor
    white_proj: torch.Tensor
    sig_mean: torch.Tensor
    sig_proj: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem_filters = BandFilters(cfg, cfg.stem_dim * cfg.patch * cfg.patch)
        self.spectral_filters = BandFilters(cfg, spectral_width(cfg))
        half = tuple(max(8, w // 2) for w in cfg.widths)
        self.encoders = nn.ModuleDict(
            {m: ModalityEncoder(cfg, cfg.widths if m == "optical" else half) for m in cfg.modalities}
        )
        # per-band image moments predicted from a chip vector (MAE image-level targets; they
        # fill the signature slots a chip lacks)
        self.moment_head = BandFilters(cfg, 2 * (cfg.embed_dim + 1))
        self.slot_keys, wl = signature_slots(cfg.keyed_bands)
        self.register_buffer("slot_wavelengths", torch.tensor(wl, dtype=torch.float32), persistent=False)
        # output whitening of both parts, fitted after training on unlabelled chips
        d, n_sig = cfg.embed_dim, 2 * len(self.slot_keys)
        self.register_buffer("white_mean", torch.zeros(d))
        self.register_buffer("white_proj", torch.eye(d)[:, : cfg.learned_dims])
        if cfg.signature:
            self.register_buffer("sig_mean", torch.zeros(n_sig))
            self.register_buffer("sig_proj", torch.eye(n_sig))

    def predict_moments(
        self, h: torch.Tensor, wavelengths: torch.Tensor, keys: tuple[str, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band image mean and std (standardised units) predicted from chip vectors, each (N, C)."""
        w = self.moment_head(wavelengths, keys)
        e = self.cfg.embed_dim
        return h @ w[:, :e].T + w[:, e], h @ w[:, e + 1 : 2 * e + 1].T + w[:, 2 * e + 1]

    def signature(self, inputs: dict[str, ModalityInput], enc: Encoded) -> torch.Tensor:
        """(N, 2 * slots) slot means then stds: measured where the chip has the band, else predicted."""
        mean, std, seen = observed_signature(inputs, enc.moments, self.slot_keys, len(enc.fused))
        pm, ps = self.predict_moments(enc.fused, self.slot_wavelengths, self.slot_keys)
        return torch.cat([torch.where(seen, mean, pm), torch.where(seen, std, ps)], dim=1)

    def embed(self, inputs: dict[str, ModalityInput]) -> torch.Tensor:
        """(N, out_dim) chip vectors; zero rows for chips with no modality present.

        The learned part (whitened, its leading ``learned_dims`` principal axes, weighted by
        ``learned_weight``) followed by the whitened spectral signature when the model has one.
        """
        enc = self(inputs)
        has_any = torch.stack(list(enc.present.values())).any(dim=0)
        z = (enc.fused - self.white_mean) @ self.white_proj
        if self.cfg.signature:
            sig = (self.signature(inputs, enc) - self.sig_mean) @ self.sig_proj
            z = torch.cat([self.cfg.learned_weight * z, sig], dim=1)
        return z * has_any[:, None].to(z.dtype)

    def forward(
        self, inputs: dict[str, ModalityInput], token_masks: dict[str, torch.Tensor] | None = None
    ) -> Encoded:
        """Encode every modality present in ``inputs`` and fuse them per chip.

        Raises:
            EarthvecError: for a modality the model has no encoder for.
        """
        unknown = [m for m in inputs if m not in self.encoders]
        if unknown:
            raise EarthvecError(
                f"the model has no encoder for modalities {unknown}; it knows {', '.join(self.encoders)}"
            )
        per, maps, pres, moments = {}, {}, {}, {}
        total = None
        count = None
        for m, inp in inputs.items():
            filt = self.stem_filters(inp.wavelengths, inp.keys)
            spec = self.spectral_filters(inp.wavelengths, inp.keys)
            hidden = None if token_masks is None else token_masks.get(m)
            moments[m] = band_moments(inp, hidden)
            h, f1 = self.encoders[m](inp, filt, spec, moments[m], hidden)
            p = inp.present.to(h.dtype)[:, None]
            per[m], maps[m], pres[m] = h, f1, inp.present
            total = h * p if total is None else total + h * p
            count = p if count is None else count + p
        if total is None or count is None:
            raise EarthvecError("no modality given; a chip batch needs at least one modality")
        fused = total / count.clamp(min=1.0)
        return Encoded(fused, per, maps, pres, moments)

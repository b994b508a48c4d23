"""Training-only heads: contrastive projector, modality discriminators and MAE decoders.

They are saved in training checkpoints but are not needed to embed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from embedder.model.config import ModelConfig
from embedder.model.net import BandFilters, MultimodalNet


def _width(encoder: nn.Module) -> int:
    """Channels of an encoder's first-stage map."""
    return int(encoder.get_submodule("stage1.0").out_channels)  # type: ignore[arg-type]


class GradReverse(torch.autograd.Function):
    """Identity forward, negated gradient backward (adversarial training)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return -grad


class Decoder(nn.Module):
    """MMEarth-style multi-pretext decoder from one modality's first-stage map.

    Predicts, for any target modality and band set (filters generated from wavelength or
    looked up by band key): pixels at half the input resolution (own modality, masked
    autoencoding),
    patch-level pixels (other modalities). Image-level band moments come from the network's
    own moment head (:meth:`MultimodalNet.predict_moments`), which also fills missing
    signature slots at inference.
    """

    def __init__(self, cfg: ModelConfig, net: MultimodalNet, dec: int = 64, up: int = 2) -> None:
        super().__init__()
        self.p = up
        self.dec = dec
        self.proj = nn.ModuleDict({m: nn.Conv2d(_width(enc), dec, 1) for m, enc in net.encoders.items()})
        self.pixel = BandFilters(cfg, dec * up * up + 1)
        self.patch = BandFilters(cfg, dec + 1)

    def features(self, modality: str, f1: torch.Tensor) -> torch.Tensor:
        """Decoder features (N, dec, 2h, 2w) of a first-stage map (at stem token resolution)."""
        g = F.gelu(self.proj[modality](f1))
        return F.interpolate(g, scale_factor=2.0, mode="bilinear", align_corners=False)

    def pixels(self, g: torch.Tensor, wavelengths: torch.Tensor, keys: tuple[str, ...]) -> torch.Tensor:
        """Pixel prediction at ``up`` times the token resolution (N, C, h*up, w*up)."""
        w = self.pixel(wavelengths, keys)
        c = w.shape[0]
        weight = w[:, :-1].reshape(c, self.dec, self.p * self.p).permute(0, 2, 1).reshape(-1, self.dec)
        bias = w[:, -1:].expand(c, self.p * self.p).reshape(-1)
        y = F.conv2d(g, weight[:, :, None, None], bias)
        return F.pixel_shuffle(y, self.p)

    def patches(self, g: torch.Tensor, wavelengths: torch.Tensor, keys: tuple[str, ...]) -> torch.Tensor:
        """Patch-level prediction (N, C, h, w)."""
        w = self.patch(wavelengths, keys)
        return F.conv2d(g, w[:, :-1, None, None], w[:, -1])


class Heads(nn.Module):
    """All training heads of one model."""

    def __init__(self, cfg: ModelConfig, net: MultimodalNet) -> None:
        super().__init__()
        e, s = cfg.embed_dim, cfg.shared_dim
        n_mod = len(cfg.modalities)
        self.projector = nn.Sequential(nn.Linear(e, e), nn.GELU(), nn.Linear(e, 64))
        self.disc_specific = nn.Sequential(nn.Linear(e - s, 64), nn.GELU(), nn.Linear(64, n_mod))
        self.disc_shared = nn.Sequential(nn.Linear(s, 64), nn.GELU(), nn.Linear(64, n_mod))
        self.decoder = Decoder(cfg, net)

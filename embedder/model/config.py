"""Configuration of the multimodal embedder and its training (plain data, no torch).

The configuration is stored inside every checkpoint and in the Parquet metadata, and it is
part of the model's version hash. Objectives are switches so that each one's value can be
measured by training without it (``earthvec eval`` ablations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from embedder.errors import EarthvecError
from embedder.sensors import get_sensor, sensor_names

OBJECTIVES = ("views", "cross_modal", "colearn", "mae")


def keyed_bands() -> list[str]:
    """``modality:band`` keys of every non-optical band in the sensor table (sorted).

    Non-optical bands (SAR polarisations, elevation, climate) have no wavelength, so the
    model learns one stem filter per key instead of generating it from the wavelength.
    """
    keys: set[str] = set()
    for name in sensor_names():
        s = get_sensor(name)
        if s.modality != "optical":
            keys.update(f"{s.modality}:{b.name}" for b in s.bands)
    return sorted(keys)


@dataclass(frozen=True)
class ModelConfig:
    """Network shape.

    Attributes:
        modalities: modality names the model has encoders for.
        keyed_bands: ``modality:band`` keys of non-optical bands with learned stem filters.
        chip_px: input chips are resized to this side (pixels).
        patch: stem patch size (stride); the stem output is ``chip_px / patch`` wide.
        stem_dim: channels after the stem.
        widths: channels of the two stride-2 trunk stages (non-optical encoders use half).
        spectral_dim: width of the spectral branch (per-band mean/std of the whole chip,
            mapped by wavelength-generated weights) joined to the pooled conv features.
        spectral_hidden: width of the per-band hidden layer of the DeepSets spectral branch
            (0: the branch is linear in the per-band moments).
        embed_dim: length of the learned chip vector (the space the objectives train).
        shared_dim: leading part of the embedding aligned across modalities; the rest
            (``embed_dim - shared_dim``) is modality-specific.
        fourier_bands: Fourier frequencies encoding the wavelength.
        hidden: width of the wavelength hyper-network.
        learned_dims: principal axes of the whitened learned vector kept in the output
            (30 + the 34 signature values: a 64-d embedding).
        signature: append the whitened spectral signature (per-slot band moments, measured
            or predicted; see :mod:`embedder.model.signature`) to the output.
        learned_weight: scale of the learned part against the signature (both whitened).
    """

    modalities: tuple[str, ...] = ("optical", "sar", "elevation", "climate")
    keyed_bands: tuple[str, ...] = field(default_factory=lambda: tuple(keyed_bands()))
    chip_px: int = 64
    patch: int = 4
    stem_dim: int = 32
    widths: tuple[int, int] = (64, 128)
    spectral_dim: int = 64
    spectral_hidden: int = 64
    embed_dim: int = 128
    shared_dim: int = 96
    fourier_bands: int = 6
    hidden: int = 64
    learned_dims: int = 30
    signature: bool = True
    learned_weight: float = 0.35

    @property
    def out_dim(self) -> int:
        """Length of the embedding the model outputs."""
        from embedder.model.signature import slot_count

        return self.learned_dims + (2 * slot_count(self.keyed_bands) if self.signature else 0)


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule, data mix and objective switches.

    Attributes:
        seed: seed of every random generator (numpy, torch, sampling).
        steps: optimisation steps.
        lr: AdamW learning rate (cosine decay after a short warm-up).
        weight_decay: AdamW weight decay.
        batch_eurosat: EuroSAT chips per step.
        batch_pairs: BigEarthNet S1/S2 crop pairs per step (0 disables the source).
        batch_landsat: Landsat-8 crops per step (0 disables the source).
        batch_global: global multimodal chips per step (0 disables; used when available).
        global_chips: random land cells (H3 res 5) drawn for the global source.
        views: within-modality augmentation views + InfoNCE (SimCLR style).
        cross_modal: CLIP-style InfoNCE between modalities of the same place.
        colearn: modality-discriminative co-learning (shared vs specific parts).
        mae: multi-pretext masked autoencoding (reconstruct + predict other modalities).
        temperature: InfoNCE temperature.
        mask_ratio: share of stem tokens masked for the MAE objective.
        band_keep_min: band-dropout keeps at least this share of bands (missing channels).
        band_drop_p: share of chips whose view gets band dropout.
        gain: views scale all bands of a chip by a factor in ``1 +- gain``.
        noise: std of a random per-band offset (standardised units).
        view_px: side of the training views in pixels (chips are embedded at full size).
        crop_min: smallest crop side of a view, as a share of the chip side.
        crop_max: largest crop side of a view, as a share of the chip side.
        w_views: weight of the view loss.
        w_cross: weight of the cross-modal loss.
        w_colearn: weight of the co-learning losses.
        w_mae: weight of the reconstruction losses.
        w_image: weight of the image-level targets (per-band mean and std) inside them.
        whiten_chips: full-size chips per source the output whitening is fitted on (0: no
            whitening).
        whiten_eps: shrinkage of the whitening (share of the largest standard deviation added
            to every axis's).
        recalibrate_chips: full-size chips per source used to recompute BatchNorm statistics
            after training (0: keep the running estimates from the training views).
    """

    seed: int = 0
    steps: int = 300
    lr: float = 2e-3
    weight_decay: float = 0.05
    batch_eurosat: int = 96
    batch_pairs: int = 24
    batch_landsat: int = 24
    batch_global: int = 32
    global_chips: int = 2048
    views: bool = True
    cross_modal: bool = True
    colearn: bool = True
    mae: bool = True
    temperature: float = 0.2
    mask_ratio: float = 0.5
    band_keep_min: float = 0.4
    band_drop_p: float = 0.5
    gain: float = 0.05
    noise: float = 0.0
    view_px: int = 32
    crop_min: float = 0.35
    crop_max: float = 0.75
    w_views: float = 1.0
    w_cross: float = 1.0
    w_colearn: float = 0.3
    w_mae: float = 1.0
    w_image: float = 1.0
    recalibrate_chips: int = 256
    whiten_chips: int = 512
    whiten_eps: float = 0.01

    def objectives(self) -> list[str]:
        """Names of the switched-on objectives."""
        return [o for o in OBJECTIVES if getattr(self, o)]

    def without(self, objective: str) -> TrainConfig:
        """This configuration with one objective switched off.

        Raises:
            EarthvecError: for an unknown objective name.
        """
        if objective not in OBJECTIVES:
            raise EarthvecError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
        return replace(self, **{objective: False})


def to_dict(cfg: ModelConfig | TrainConfig) -> dict[str, Any]:
    """JSON-able dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def model_config_from(d: dict[str, Any]) -> ModelConfig:
    """Rebuild a :class:`ModelConfig` from :func:`to_dict` output."""
    names = {f.name for f in fields(ModelConfig)}
    kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
    return ModelConfig(**kwargs)


def train_config_from(d: dict[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :func:`to_dict` output."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in d.items() if k in names})

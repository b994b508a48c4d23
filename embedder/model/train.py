"""Self-supervised training of the multimodal embedder on the project's real data.

Each step draws one group of chips per source (EuroSAT chips; BigEarthNet S1/S2 crop pairs;
Landsat-8 crops; global multimodal chips when available), makes two augmented views of each
group and applies the switched-on objectives:

* ``views``: InfoNCE between the two views' fused embeddings (single-modality data trains);
* ``cross_modal``: CLIP-style InfoNCE between the modalities of the same chips;
* ``colearn``: modality-shared vs modality-specific parts with discriminators;
* ``mae``: the first view has half its stem tokens hidden; decoders reconstruct them and
  predict the other modalities (pixel and image level).

Everything is seeded (numpy, torch, deterministic algorithms), so the same configuration
on the same data and thread count gives the same weights and version hash.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder import datapath
from embedder.batch import ChipBatch
from embedder.errors import EarthvecError
from embedder.model import data as sources
from embedder.model.checkpoint import Checkpoint, make_checkpoint
from embedder.model.config import ModelConfig, TrainConfig, to_dict
from embedder.model.heads import Heads
from embedder.model.losses import colearn_loss, cross_modal_loss, info_nce, mae_loss, view_loss
from embedder.model.net import Encoded, ModalityInput, MultimodalNet
from embedder.model.prep import augment, sensor_stats, to_inputs
from embedder.whiten import whitening

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch and switch torch to deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def take_inputs(inputs: dict[str, ModalityInput], rows: np.ndarray) -> dict[str, ModalityInput]:
    """The chips at ``rows`` of already prepared inputs."""
    idx = torch.from_numpy(rows).to(next(iter(inputs.values())).x.device)
    return {
        m: ModalityInput(i.x[idx], i.band_mask[idx], i.valid[idx], i.wavelengths, i.keys, i.present[idx])
        for m, i in inputs.items()
    }


@dataclass
class TrainingData:
    """Prepared training sources.

    Attributes:
        eurosat: EuroSAT chips as prepared inputs (unlabelled use only).
        pairs: BigEarthNet S1/S2 scenes to crop from, if any.
        landsat: Landsat-8 scene to crop from, if any.
        global_chips: global multimodal chips as prepared inputs, if any.
        sources: human-readable description of what was loaded.
    """

    eurosat: dict[str, ModalityInput]
    pairs: sources.PairedScenes | None
    landsat: sources.PairedScenes | None
    global_chips: dict[str, ModalityInput] | None
    sources: dict[str, Any] = field(default_factory=dict)


def load_global_chips(root: Path, n: int, seed: int) -> ChipBatch | None:
    """Global multimodal chips of ``n`` random land cells, or None when unavailable.

    Modalities: Blue Marble optical (R, G, B), ETOPO elevation, Koppen climate.
    """
    from embedder.globe.layers import training_chip_batch

    try:
        return training_chip_batch(root, n=n, seed=seed)
    except EarthvecError as exc:  # an optional source must not stop training
        log.warning("global layers unavailable for training: %s", exc)
        return None


def load_training_data(
    cfg: TrainConfig,
    stats: dict[str, dict[str, list[float]]],
    chip_px: int,
    root: str | Path | None,
    device: torch.device,
) -> TrainingData:
    """Read every enabled source from the data folder."""
    base = datapath.data_dir(root)
    es = sources.load_eurosat(base)
    info: dict[str, Any] = {"eurosat_ms": len(es.labels)}
    pairs = sources.load_bigearthnet(base) if cfg.batch_pairs else None
    if pairs is not None:
        info["bigearthnet_s1s2_pairs"] = len(pairs.arrays["optical"])
    landsat = sources.load_landsat(base) if cfg.batch_landsat else None
    if landsat is not None:
        info["landsat8_scenes"] = 1
    glob_inputs = None
    if cfg.batch_global:
        gb = load_global_chips(base, cfg.global_chips, cfg.seed)
        if gb is not None and len(gb):
            glob_inputs = to_inputs(gb, stats, chip_px, device)
            info["global_chips"] = len(gb)
    return TrainingData(to_inputs(es.batch, stats, chip_px, device), pairs, landsat, glob_inputs, info)


def _groups(
    data: TrainingData,
    cfg: TrainConfig,
    rng: np.random.Generator,
    stats: dict[str, Any],
    chip_px: int,
    device: torch.device,
) -> list[dict[str, ModalityInput]]:
    out = []
    n_es = len(next(iter(data.eurosat.values())).x)
    out.append(take_inputs(data.eurosat, rng.choice(n_es, size=min(cfg.batch_eurosat, n_es), replace=False)))
    if data.pairs is not None:
        out.append(to_inputs(sources.random_crops(data.pairs, cfg.batch_pairs, rng), stats, chip_px, device))
    if data.landsat is not None:
        out.append(
            to_inputs(sources.random_crops(data.landsat, cfg.batch_landsat, rng), stats, chip_px, device)
        )
    if data.global_chips is not None:
        n_g = len(next(iter(data.global_chips.values())).x)
        out.append(
            take_inputs(data.global_chips, rng.choice(n_g, size=min(cfg.batch_global, n_g), replace=False))
        )
    return out


def _token_masks(
    view: dict[str, ModalityInput], ratio: float, patch: int, rng: np.random.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    out = {}
    for m, inp in view.items():
        n, s = inp.x.shape[0], inp.x.shape[-1] // patch
        out[m] = torch.from_numpy(rng.random((n, s, s)) < ratio).to(device)
    return out


@torch.no_grad()
def recalibrate_batchnorm(net: MultimodalNet, samples: list[dict[str, ModalityInput]]) -> None:
    """Recompute BatchNorm statistics on full-size, un-augmented chips of every source.

    Training sees small augmented views; embedding sees whole chips. Exact averages over
    ``samples`` (:func:`_source_samples`) replace the running estimates (no labels involved).
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for b in samples:
        for chunk in _in_chunks(b):
            net(chunk)
    for m in bns:
        m.momentum = 0.1
    net.eval()


def _source_samples(
    data: TrainingData,
    rng: np.random.Generator,
    stats: dict[str, Any],
    chip_px: int,
    device: torch.device,
    per_source: int,
) -> list[dict[str, ModalityInput]]:
    """Up to ``per_source`` full-size, un-augmented chips of every training source.

    A multimodal source also contributes each of its modalities alone (the same chips), so
    whatever is fitted on these samples sees every modality subset the model embeds.
    """
    out: list[dict[str, ModalityInput]] = []
    for prepared in (data.eurosat, data.global_chips):
        if prepared is not None:
            n = len(next(iter(prepared.values())).x)
            out.append(take_inputs(prepared, rng.choice(n, size=min(per_source, n), replace=False)))
    for scenes in (data.pairs, data.landsat):
        if scenes is not None:
            out.append(to_inputs(sources.random_crops(scenes, per_source, rng), stats, chip_px, device))
    return out + [{m: inp} for b in out if len(b) > 1 for m, inp in b.items()]


def _in_chunks(batch: dict[str, ModalityInput], size: int = 128) -> Iterator[dict[str, ModalityInput]]:
    n = len(next(iter(batch.values())).x)
    for start in range(0, n, size):
        yield take_inputs(batch, np.arange(start, min(start + size, n)))


@torch.no_grad()
def fit_whitening(net: MultimodalNet, batches: list[dict[str, ModalityInput]], eps: float) -> None:
    """Set the network's output whitening from unlabelled chips (no labels involved).

    The learned vectors and the spectral signatures of ``batches`` (every source weighted by
    its chip count) are whitened separately (:func:`whitening`); the learned part keeps its
    ``learned_dims`` leading axes. Cosine similarity of whitened vectors weighs every
    direction the data uses, which suits kNN and nearest-neighbour search better than the
    raw training geometry.
    """
    net.eval()
    fused, sig = [], []
    for b in batches:
        for chunk in _in_chunks(b):
            enc = net(chunk)
            fused.append(enc.fused.float())
            if net.cfg.signature:
                sig.append(net.signature(chunk, enc).float())
    shared = net.cfg.shared_dim
    net.white_mean.zero_()
    net.white_proj.zero_()
    parts: list[tuple[torch.Tensor, int | None, torch.Tensor, torch.Tensor]] = [
        (torch.cat(fused)[:, :shared], net.cfg.learned_dims, net.white_mean[:shared], net.white_proj[:shared])
    ]
    if net.cfg.signature:
        parts.append((torch.cat(sig), None, net.sig_mean, net.sig_proj))
    for z, dims, mean_buf, proj_buf in parts:
        mean, proj = whitening(z.cpu().numpy(), eps, dims)
        mean_buf.copy_(torch.from_numpy(mean))
        proj_buf.copy_(torch.from_numpy(proj))


def finalise(
    net: MultimodalNet,
    data: TrainingData,
    rng: np.random.Generator,
    stats: dict[str, Any],
    device: torch.device,
    cfg: TrainConfig,
) -> None:
    """The label-free steps after optimisation: BatchNorm recalibration, then output whitening."""
    chip_px = net.cfg.chip_px
    if cfg.recalibrate_chips > 0:
        recalibrate_batchnorm(net, _source_samples(data, rng, stats, chip_px, device, cfg.recalibrate_chips))
    if cfg.whiten_chips:
        samples = _source_samples(data, rng, stats, chip_px, device, cfg.whiten_chips)
        fit_whitening(net, samples, cfg.whiten_eps)


def random_init_checkpoint(
    seed: int = 0, train_cfg: TrainConfig | None = None, data_dir: str | Path | None = None
) -> Checkpoint:
    """The untrained architecture (seeded random weights), finalised like a trained model.

    The evaluation baseline "same architecture, randomly initialised": BatchNorm statistics
    and output whitening are fitted on the same unlabelled chips as after training, so the
    difference to a trained model is what the objectives learned.
    """
    tcfg = train_cfg or TrainConfig()
    dev = torch.device("cpu")
    seed_everything(seed)
    stats = sensor_stats()
    net = MultimodalNet(ModelConfig()).to(dev)
    data = load_training_data(tcfg, stats, net.cfg.chip_px, data_dir, dev)
    finalise(net, data, np.random.default_rng(tcfg.seed), stats, dev, tcfg)
    return make_checkpoint(net, stats, {}, {"random_init": True, "seed": seed, "sources": data.sources})


def _lr(step: int, cfg: TrainConfig) -> float:
    warm = max(1, cfg.steps // 20)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(
    train_cfg: TrainConfig | None = None,
    model_cfg: ModelConfig | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    log_every: int = 50,
) -> Checkpoint:
    """Train a model from scratch and return its checkpoint.

    Args:
        train_cfg: schedule, sources and objectives (defaults: :class:`TrainConfig`).
        model_cfg: network shape (defaults: :class:`ModelConfig`).
        data_dir: the data folder (default :func:`embedder.datapath.data_dir`).
        device: ``"cpu"`` or ``"cuda"`` (default: CUDA when available; bf16 autocast there).
        log_every: log losses every this many steps.
    """
    tcfg = train_cfg or TrainConfig()
    mcfg = model_cfg or ModelConfig()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    seed_everything(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)
    stats = sensor_stats()
    data = load_training_data(tcfg, stats, mcfg.chip_px, data_dir, dev)
    net = MultimodalNet(mcfg).to(dev)
    heads = Heads(mcfg, net).to(dev)
    params = list(net.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    mod_index = {m: i for i, m in enumerate(mcfg.modalities)}
    cuda = dev.type == "cuda"
    t0 = time.perf_counter()
    chips_seen = 0
    history: list[dict[str, float]] = []
    net.train()
    heads.train()
    for step in range(tcfg.steps):
        for g in opt.param_groups:
            g["lr"] = _lr(step, tcfg)
        terms: dict[str, list[torch.Tensor]] = {"views": [], "cross_modal": [], "mae": []}
        encs: list[Encoded] = []
        for group in _groups(data, tcfg, rng, stats, mcfg.chip_px, dev):
            crop = (tcfg.crop_min, tcfg.crop_max)
            kw = {"noise": tcfg.noise, "gain": tcfg.gain, "band_drop_p": tcfg.band_drop_p}
            view_a, tgt_a = augment(group, rng, tcfg.band_keep_min, crop=crop, out_px=tcfg.view_px, **kw)
            view_b, _ = augment(group, rng, tcfg.band_keep_min, crop=crop, out_px=tcfg.view_px, **kw)
            masks = _token_masks(view_a, tcfg.mask_ratio, mcfg.patch, rng, dev) if tcfg.mae else None
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                enc_a = net(view_a, masks)
                enc_b = net(view_b)
                if tcfg.views:
                    terms["views"].append(view_loss(heads, enc_a, enc_b, tcfg.temperature))
                if tcfg.cross_modal:
                    for enc in (enc_a, enc_b):
                        cm = cross_modal_loss(enc, mcfg.shared_dim, tcfg.temperature)
                        if cm is not None:
                            terms["cross_modal"].append(cm)
                if tcfg.mae and masks is not None:
                    ml = mae_loss(net, heads, enc_a, view_a, tgt_a, masks, mcfg.patch, tcfg.w_image)
                    if ml is not None:
                        terms["mae"].append(ml)
            encs.extend([enc_a, enc_b])
            chips_seen += 2 * len(next(iter(group.values())).x)
        loss_parts: dict[str, torch.Tensor] = {}
        weights = {"views": tcfg.w_views, "cross_modal": tcfg.w_cross, "mae": tcfg.w_mae}
        for k, v in terms.items():
            if v:
                loss_parts[k] = weights[k] * torch.stack([t.float() for t in v]).mean()
        if tcfg.colearn:
            cl = colearn_loss(heads, encs, mod_index, mcfg.shared_dim)
            if cl is not None:
                loss_parts["colearn"] = tcfg.w_colearn * cl.float()
        if not loss_parts:
            continue
        loss = torch.stack(list(loss_parts.values())).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % log_every == 0 or step == tcfg.steps - 1:
            row: dict[str, float] = {k: round(float(v.detach()), 4) for k, v in loss_parts.items()}
            row["step"] = step
            history.append(row)
            log.info("step %d/%d loss %.4f %s", step, tcfg.steps, float(loss.detach()), row)
    finalise(net, data, rng, stats, dev, tcfg)
    seconds = time.perf_counter() - t0
    info = {
        "sources": data.sources,
        "objectives": tcfg.objectives(),
        "train_seconds": round(seconds, 1),
        "train_views_per_s": round(chips_seen / max(seconds, 1e-9), 1),
        "device": dev.type,
        "threads": torch.get_num_threads(),
        "history": history,
    }
    net.eval()
    return make_checkpoint(net, stats, to_dict(tcfg), info)


__all__ = ["info_nce", "seed_everything", "train"]

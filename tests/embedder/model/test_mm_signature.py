"""The spectral signature and the output whitening, against exact numpy oracles on real chips."""

from __future__ import annotations

import numpy as np
import pytest

from embedder.baseline import ChannelStats
from embedder.batch import ChipBatch

torch = pytest.importorskip("torch")


def _inputs(batch: ChipBatch, ckpt):  # noqa: ANN001, ANN202
    from embedder.model.prep import to_inputs

    return to_inputs(batch, ckpt.normalisation, ckpt.model_config.chip_px)


def test_measured_slots_equal_the_channel_statistics(random_ckpt, eurosat_chips) -> None:
    batch = eurosat_chips.batch.take(np.arange(16))
    net = random_ckpt.build()
    with torch.no_grad():
        inputs = _inputs(batch, random_ckpt)
        sig = net.signature(inputs, net(inputs)).numpy()
    oracle = ChannelStats().features(batch)  # per-slot mean then std of standardised pixels
    n_opt = 13
    s = len(net.slot_keys)
    np.testing.assert_allclose(sig[:, :n_opt], oracle[:, :n_opt], atol=2e-4)
    half = ChannelStats().dim // 2  # the baseline's stds follow its means
    np.testing.assert_allclose(sig[:, s : s + n_opt], oracle[:, half : half + n_opt], atol=2e-3)


def test_missing_band_slot_is_predicted_not_zero(random_ckpt, eurosat_chips) -> None:
    batch = eurosat_chips.batch.take(np.arange(8))
    mb = batch.modalities["optical"]
    without_nir = ChipBatch({"optical": mb.select_bands([b for b in mb.bands if b != "B08"])})
    net = random_ckpt.build()
    j = net.slot_keys.index("optical:842nm")
    with torch.no_grad():
        inputs = _inputs(without_nir, random_ckpt)
        enc = net(inputs)
        fused = enc.fused
        sig = net.signature(inputs, enc)
        pm, ps = net.predict_moments(fused, net.slot_wavelengths, net.slot_keys)
    torch.testing.assert_close(sig[:, j], pm[:, j])
    torch.testing.assert_close(sig[:, len(net.slot_keys) + j], ps[:, j])
    assert float(sig[:, j].abs().min()) > 0  # never the population-mean placeholder 0


def test_whitening_matches_numpy_svd_oracle(eurosat_chips) -> None:
    from embedder.whiten import whitening

    z = ChannelStats().features(eurosat_chips.batch)[:, :26].astype(np.float64)  # real optical stats
    mean, proj = whitening(z, eps=0.0, dims=10)
    w = (z - mean) @ proj
    np.testing.assert_allclose(np.cov(w.T, bias=True), np.eye(10), atol=1e-6)
    # the kept axes are the leading principal axes, each scaled by 1 / its standard deviation
    _, s, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(vt[:10] @ proj), np.diag(np.sqrt(len(z)) / s[:10]), atol=1e-6 * s.max())
    shrunk = whitening(z, eps=0.5)[1]
    assert np.linalg.norm(shrunk, axis=0).max() < np.linalg.norm(whitening(z, eps=0.0)[1], axis=0).max()


def test_fitted_model_whitens_its_fit_chips(eurosat_chips) -> None:
    from embedder.model.checkpoint import random_checkpoint
    from embedder.model.train import fit_whitening

    ckpt = random_checkpoint(0)
    net = ckpt.build()
    inputs = _inputs(eurosat_chips.batch, ckpt)
    fit_whitening(net, [inputs], eps=0.0)
    with torch.no_grad():
        z = net.embed(inputs).numpy()
    d = net.cfg.learned_dims
    w = net.cfg.learned_weight
    np.testing.assert_allclose(z[:, :d].mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(z[:, :d].T, bias=True), w**2 * np.eye(d), atol=2e-3)
    sig = z[:, d:]
    var = sig.var(0)
    assert np.all((np.abs(var - 1) < 2e-2) | (var < 1e-6))  # unit variance, or an unused direction

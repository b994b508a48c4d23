"""Pixel maps of earthvec-tex against numpy oracles, on real EuroSAT pixels."""

from __future__ import annotations

import numpy as np
import pytest

from embedder.model import data as sources
from embedder.tex import features as feat


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    return sources.load_eurosat().batch.modalities["optical"].data[:24]


def test_pooled_stats_match_numpy(chips) -> None:
    x = np.log(chips + 0.005)
    x[0, 3, :10, :10] = np.nan  # missing pixels are skipped, not counted
    got = feat.pooled_stats(x)
    c = x.shape[1]
    np.testing.assert_allclose(got[:, :c], np.nanmean(x.reshape(len(x), c, -1), axis=2), rtol=1e-5)
    np.testing.assert_allclose(
        got[:, c : 2 * c], np.nanmean(x[:, :, 24:40, 24:40].reshape(len(x), c, -1), axis=2), rtol=1e-5
    )
    np.testing.assert_allclose(got[:, 2 * c :], np.nanstd(x.reshape(len(x), c, -1), axis=2), rtol=1e-4)


def test_texture_is_rotation_invariant_and_sees_structure(chips) -> None:
    x = np.log(chips[:, [1, 2, 3]] + 0.005)
    t = feat.texture(x)
    assert t.shape == (len(x), feat.texture_dim(3))
    np.testing.assert_allclose(feat.texture(np.rot90(x, 1, axes=(2, 3))), t, rtol=1e-3, atol=1e-4)
    flat = np.repeat(np.repeat(feat._pool2(feat._pool2(x)), 4, axis=2), 4, axis=3)  # detail removed
    assert (feat.texture(flat)[:, :3] < t[:, :3]).all()  # finest-level band energy drops


def test_texture_handles_small_chips(chips) -> None:
    small = chips[:4, :3, :16, :16]
    assert feat.texture(small).shape == (4, feat.texture_dim(3))
    assert np.isfinite(feat.texture(small)).all()


def test_impute_slots_is_the_gaussian_conditional_mean() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + np.eye(4)
    z = rng.multivariate_normal(np.zeros(4), cov, size=(2, 3, 3)).transpose(0, 3, 1, 2).astype(np.float32)
    present = np.array([True, False, True, False])
    got = feat.impute_slots(z, present, cov, ridge=0.0)
    gain = cov[np.ix_([1, 3], [0, 2])] @ np.linalg.inv(cov[np.ix_([0, 2], [0, 2])])
    want = np.einsum("ap,nphw->nahw", gain, z[:, [0, 2]])
    np.testing.assert_allclose(got[:, [1, 3]], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got[:, [0, 2]], z[:, [0, 2]])


def test_class_fractions_count_valid_pixels() -> None:
    codes = np.array([[[[1, 2], [2, np.nan]]]], dtype=np.float32)
    out = feat.class_fractions(codes, [1, 2, 3])
    np.testing.assert_allclose(out[0, :3], [1 / 3, 2 / 3, 0])

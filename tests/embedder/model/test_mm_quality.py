"""The shipped checkpoint against the channel-statistics baseline, on the real EuroSAT chips.

Spatially blocked 5-fold CV (H3 res-2 blocks), the protocol of ``earthvec eval``. The
thresholds sit a few points under what the shipped model measured (see data/models/eval.json),
so a checkpoint that loses its edge over the baseline fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedder.model import probes

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def shipped():  # noqa: ANN201
    from embedder.model.checkpoint import candidate_paths
    from embedder.model.embedder import MultimodalEmbedder

    path = next((p for p in candidate_paths() if p.is_file()), None)
    if path is None:
        pytest.skip("no shipped checkpoint in this checkout (run `earthvec train`)")
    return MultimodalEmbedder(str(path), device="cpu")


@pytest.fixture(scope="module")
def folds(eurosat_chips) -> np.ndarray:  # noqa: ANN001
    return probes.spatial_folds(eurosat_chips.lat, eurosat_chips.lon, 5, 0)


def test_knn_beats_channel_statistics(shipped, eurosat_chips, folds) -> None:
    from embedder.baseline import ChannelStats

    y = eurosat_chips.labels
    ours = probes.blocked_cv(shipped.embed(eurosat_chips.batch), y, folds, "knn", 5)
    base = probes.blocked_cv(ChannelStats().embed(eurosat_chips.batch), y, folds, "knn", 5)
    assert ours >= base + 0.04, (ours, base)


def test_five_shot_knn_beats_channel_statistics(shipped, eurosat_chips, folds) -> None:
    from embedder.baseline import ChannelStats

    y = eurosat_chips.labels
    ours = probes.few_shot(shipped.embed(eurosat_chips.batch), y, folds, 5, "knn", draws=10)[0]
    base = probes.few_shot(ChannelStats().embed(eurosat_chips.batch), y, folds, 5, "knn", draws=10)[0]
    assert ours >= base + 0.05, (ours, base)


def test_half_the_bands_cost_under_ten_points(shipped, eurosat_chips, folds) -> None:
    from embedder.model.evaluate import half_band_subsets, with_bands

    y = eurosat_chips.labels
    full = probes.blocked_cv(shipped.embed(eurosat_chips.batch), y, folds, "knn", 5)
    bands = eurosat_chips.batch.modalities["optical"].bands
    half = [
        probes.blocked_cv(shipped.embed(with_bands(eurosat_chips.batch, b)), y, folds, "knn", 5)
        for b in half_band_subsets(bands, 5, 0)
    ]
    assert full - float(np.mean(half)) < 0.10, (full, half)

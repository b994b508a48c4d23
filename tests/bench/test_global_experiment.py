"""The global experiment's metrics against oracles, and a tiny end-to-end run on real layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from bench.global_experiment import (
    ExperimentConfig,
    balanced_accuracy,
    format_table,
    learning_curve,
    macro_f1,
    majority_baseline,
    run_experiment,
)
from embedder.globe.layers import GlobalLayers
from embedder.registry import get_embedder

ROOT = Path(__file__).resolve().parents[2] / "data" / "global"


def test_macro_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))


def test_balanced_accuracy_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.choice(5, 400, p=[0.5, 0.2, 0.15, 0.1, 0.05])  # imbalanced, like land cover
    pred = np.where(rng.random(400) < 0.5, y, 0)
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))


def test_majority_baseline_uses_other_folds() -> None:
    y = np.array([1, 1, 1, 2, 2, 2, 2, 2])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # fold 0 is predicted as 2 (fold 1's majority): 1 right; fold 1 as 1: 0 right
    assert majority_baseline(y, folds) == pytest.approx(1 / 8)


def test_learning_curve_skips_draws_larger_than_the_pool() -> None:
    x = np.eye(4)[np.repeat(np.arange(4), 10)] + 0.01
    y = np.repeat(np.arange(4), 10)
    folds = np.tile(np.arange(2), 20)
    cfg = ExperimentConfig(seeds=(4, 20, 30), draws=2, k=1)
    curve = learning_curve(x, y, folds, cfg)
    assert list(curve) == [4, 20]  # 30 > 20 seeds available outside a fold
    assert curve[20]["acc"] == 1.0  # separable classes, every class among the seeds


def test_tiny_experiment_on_real_layers() -> None:
    cfg = ExperimentConfig(cells=600, seeds=(10, 100, 400), draws=1, folds=3)
    report = run_experiment(cfg, layers=GlobalLayers(ROOT), log=lambda _: None)
    assert report["data"]["cells"] == 600
    assert report["models"] == {"stats": f"stats@{get_embedder('stats').version}"}
    res = report["results"]
    assert set(res) == {f"stats/{v}" for v in ("all", "optical", "no_optical", "no_elevation", "no_climate")}
    # more seeds help, and the embeddings beat always guessing the majority class
    assert res["stats/all"]["400"]["acc"] > res["stats/all"]["10"]["acc"]
    assert res["stats/all"]["400"]["acc"] > report["majority_baseline_acc"] + 0.1
    assert "| stats/all |" in format_table(report)

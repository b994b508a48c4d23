"""The global multimodal experiment: label efficiency, co-learning and missing modalities.

On random land cells (uniform by area, H3 res 5) with MODIS IGBP labels (label source only,
never an embedder input or training target) it measures kNN accuracy under spatially
blocked cross-validation (H3 blocks: nearby cells never straddle seeds and queries):

* **label efficiency**: accuracy against the number of labelled seeds (10 .. 10,000),
  drawn at random from the other folds;
* **missing modality**: the same cells embedded from all modalities, optical only, and
  without optical (elevation + climate);
* **co-learning**: a model trained on optical global chips only against one trained on all
  global modalities, both embedding optical only (needs torch; see :func:`train_models`).

Run it::

    python -m bench.global_experiment --cells 15000 --train-steps 300 --out global_exp.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder.batch import ChipBatch
from embedder.contract import atomic_write_bytes
from embedder.globe.labels import igbp_classes, majority_labels
from embedder.globe.layers import GlobalLayers, random_land_points
from embedder.model.probes import knn_predict, spatial_folds
from embedder.registry import Embedder, get_embedder, model_id
from index.cv import curve_predictions

VARIANTS: dict[str, tuple[str, ...]] = {
    "all": ("optical", "elevation", "climate"),
    "optical": ("optical",),
    "no_optical": ("elevation", "climate"),
    "no_elevation": ("optical", "climate"),
    "no_climate": ("optical", "elevation"),
}
WATER = 0


@dataclass
class ExperimentConfig:
    """What the experiment measures.

    Attributes:
        cells: random land cells to label and embed.
        res: H3 resolution of the cells.
        seed: sampling seed of cells, folds and seed draws.
        folds: spatial cross-validation folds.
        block_res: H3 resolution of the spatial blocks (res 1: ~420 km edges).
        seeds: numbers of labelled seeds for the learning curve.
        draws: random seed draws per fold and seed count.
        k: neighbours of the kNN vote.
    """

    cells: int = 15_000
    res: int = 5
    seed: int = 1
    folds: int = 5
    block_res: int = 1
    seeds: tuple[int, ...] = (10, 30, 100, 300, 1000, 3000, 10_000)
    draws: int = 3
    k: int = 5


@dataclass
class ExperimentData:
    """Cells, labels, folds and chips of one experiment."""

    cells: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    chips: ChipBatch
    info: dict[str, Any] = field(default_factory=dict)


def experiment_data(layers: GlobalLayers, cfg: ExperimentConfig) -> ExperimentData:
    """Random land cells with a land MODIS class (water and unlabelled cells dropped)."""
    cells, lat, lon = random_land_points(layers, int(cfg.cells * 1.15), cfg.seed, cfg.res)
    labels = majority_labels(layers, lat, lon, cfg.res)
    keep = np.flatnonzero(labels > WATER)[: cfg.cells]
    cells, lat, lon, labels = cells[keep], lat[keep], lon[keep], labels[keep]
    folds = spatial_folds(lat, lon, cfg.folds, cfg.seed, cfg.block_res)
    names = igbp_classes()
    counts = {names[int(c)]: int(n) for c, n in zip(*np.unique(labels, return_counts=True), strict=True)}
    info = {"cells": len(cells), "classes": len(counts), "class_counts": counts}
    return ExperimentData(cells, lat, lon, labels, folds, layers.chips(lat, lon), info)


def learning_curve(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, cfg: ExperimentConfig
) -> dict[int, dict[str, float]]:
    """Accuracy and macro-F1 of kNN (mean over folds and draws) per number of seeds."""

    def predict(pick: np.ndarray, test: np.ndarray) -> np.ndarray:
        return knn_predict(x[pick], y[pick], x[test], min(cfg.k, len(pick)))

    out: dict[int, dict[str, float]] = {}
    rng = np.random.default_rng(cfg.seed)
    for n, preds in curve_predictions(folds, list(cfg.seeds), cfg.draws, rng, predict):
        accs = [float((p == y).mean()) for p in preds]
        out[n] = {
            "acc": float(np.mean(accs)),
            "acc_std": float(np.std(accs)),
            "balanced_acc": float(np.mean([balanced_accuracy(y, p) for p in preds])),
            "f1": float(np.mean([macro_f1(y, p) for p in preds])),
        }
    return out


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the classes present in ``y`` of the share of their cells predicted right."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``y``."""
    scores = []
    for c in np.unique(y):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        scores.append(2 * tp / max(2 * tp + fp + fn, 1.0))
    return float(np.mean(scores))


def majority_baseline(y: np.ndarray, folds: np.ndarray) -> float:
    """Accuracy of predicting the most common class of the other folds."""
    correct = 0
    for f in np.unique(folds):
        test = folds == f
        vals, counts = np.unique(y[~test], return_counts=True)
        correct += int(np.sum(y[test] == vals[counts.argmax()]))
    return correct / len(y)


def embed_variants(emb: Embedder, chips: ChipBatch, variants: list[str]) -> dict[str, np.ndarray]:
    """Embeddings of the same chips restricted to each variant's modalities."""
    out = {}
    for v in variants:
        sub = ChipBatch({m: chips.modalities[m] for m in VARIANTS[v] if m in chips.modalities})
        out[v] = emb.embed(sub)
    return out


@contextmanager
def _global_training_modalities(modalities: tuple[str, ...]) -> Iterator[None]:
    """Make the trainer's global source yield chips of ``modalities`` only."""
    import embedder.model.train as trainer
    from embedder.globe.layers import training_chip_batch

    original = trainer.load_global_chips

    def load(root: Path, n: int, seed: int) -> ChipBatch | None:
        batch = training_chip_batch(root, n=n, seed=seed)
        return ChipBatch({m: batch.modalities[m] for m in modalities})

    trainer.load_global_chips = load
    try:
        yield
    finally:
        trainer.load_global_chips = original


def train_models(
    steps: int, train_chips: int = 8192, seed: int = 0, chip_px: int = 32
) -> dict[str, Embedder]:
    """Train the two co-learning arms on the same data: optical-only vs all global modalities.

    Both use EuroSAT (optical) plus global chips (training seed ``seed``, disjoint draw from
    the evaluation cells' seed); no labels are used. Needs torch.
    """
    from embedder.model.config import ModelConfig, TrainConfig
    from embedder.model.embedder import MultimodalEmbedder
    from embedder.model.train import train

    tcfg = TrainConfig(
        seed=seed,
        steps=steps,
        batch_eurosat=16,
        batch_pairs=0,
        batch_landsat=0,
        batch_global=64,
        global_chips=train_chips,
    )
    mcfg = ModelConfig(chip_px=chip_px)
    out: dict[str, Embedder] = {}
    for arm, mods in (("mm_optical_trained", ("optical",)), ("mm_all_trained", VARIANTS["all"])):
        with _global_training_modalities(mods):
            ckpt = train(tcfg, mcfg, device="cpu", log_every=max(1, steps // 5))
        out[arm] = MultimodalEmbedder(ckpt, device="cpu", name=arm)
    return out


def run_experiment(
    cfg: ExperimentConfig,
    embedders: dict[str, Embedder] | None = None,
    layers: GlobalLayers | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Embed the experiment cells with each embedder and variant; measure learning curves."""
    layers = layers or GlobalLayers()
    t0 = time.perf_counter()
    data = experiment_data(layers, cfg)
    log(f"{data.info['cells']} cells, {data.info['classes']} classes ({time.perf_counter() - t0:.1f} s)")
    embedders = embedders or {"stats": get_embedder("stats")}
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "data": data.info,
        "majority_baseline_acc": majority_baseline(data.labels, data.folds),
        "models": {name: model_id(emb) for name, emb in embedders.items()},
        "results": {},
    }
    for name, emb in embedders.items():
        for variant, x in embed_variants(emb, data.chips, list(VARIANTS)).items():
            t = time.perf_counter()
            curve = learning_curve(x, data.labels, data.folds, cfg)
            report["results"][f"{name}/{variant}"] = {str(n): v for n, v in curve.items()}
            log(f"{name}/{variant}: {format_curve(curve)} ({time.perf_counter() - t:.1f} s)")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def format_curve(curve: dict[int, dict[str, float]]) -> str:
    """One line: accuracy per seed count."""
    return " ".join(f"{n}:{v['acc']:.3f}" for n, v in curve.items())


def format_table(report: dict[str, Any]) -> str:
    """Markdown table of kNN accuracy (balanced accuracy) per embedder/variant and seed count."""
    seeds = [str(s) for s in report["config"]["seeds"]]
    lines = [
        "| embedder/variant | " + " | ".join(f"{s} seeds" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for name, curve in report["results"].items():
        cells = [
            f"{curve[s]['acc']:.3f} ({curve[s]['balanced_acc']:.3f})" if s in curve else "-" for s in seeds
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"\nmajority-class baseline accuracy: {report['majority_baseline_acc']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run the experiment, print the table, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=ExperimentConfig.cells)
    p.add_argument("--draws", type=int, default=ExperimentConfig.draws)
    p.add_argument("--train-steps", type=int, default=0, help="train the co-learning arms (torch)")
    p.add_argument("--train-chips", type=int, default=8192)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--checkpoint", action="append", default=[], help="name=path of an earthvec-mm model")
    p.add_argument("--model", action="append", default=[], help="a registered embedder, e.g. earthvec-tex")
    p.add_argument("--out", type=Path, default=Path("global_experiment.json"))
    a = p.parse_args(argv)
    cfg = ExperimentConfig(cells=a.cells, draws=a.draws)
    embedders: dict[str, Embedder] = {"stats": get_embedder("stats")}
    for name in a.model:
        embedders[name] = get_embedder(name)
    for spec in a.checkpoint:
        name, _, path = spec.partition("=")
        embedders[name] = get_embedder("earthvec-mm", checkpoint=path, device="cpu")
    if a.train_steps:
        embedders.update(train_models(a.train_steps, a.train_chips, a.train_seed))
    report = run_experiment(cfg, embedders)
    print(format_table(report))
    atomic_write_bytes(a.out, json.dumps(report, indent=2).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

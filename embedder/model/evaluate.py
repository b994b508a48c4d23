"""``earthvec eval``: probes, few-shot curves and robustness of embedders on the real data.

Protocol (all on the labelled EuroSAT-MS chips in ``data/eurosat_ms``; no labels are used in
training, but the self-supervised models did see these chips unlabelled):

* spatially blocked 5-fold cross-validation: chips are grouped by H3 res-2 cell (~160 km),
  so train and test chips never come from the same area;
* kNN (k = 1, 5, 10, cosine) and logistic-regression probes;
* few-shot curves: 1/5/10/20 labels per class drawn at random from the training folds,
  many draws, logistic regression and kNN;
* missing channels: the same chips embedded from band subsets (random halves of the 13
  bands, RGB only, the bands Landsat-8 also has), both everywhere and only for the queries
  (labelled seeds keep all bands);
* BigEarthNet S1/S2: cross-modal retrieval, each Sentinel-1-only crop queries the
  Sentinel-2-only crops; a hit is a crop of the same patch (and so the same CORINE labels).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder import datapath
from embedder.batch import ChipBatch
from embedder.contract import atomic_write_bytes
from embedder.model import data as sources
from embedder.model import probes
from embedder.registry import Embedder, model_id

log = logging.getLogger(__name__)

RGB = ("B04", "B03", "B02")
LANDSAT_LIKE = ("B01", "B02", "B03", "B04", "B8A", "B10", "B11", "B12")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol settings.

    Attributes:
        folds: spatial CV folds.
        ks: kNN neighbour counts.
        shots: labels per class of the few-shot curves.
        draws: random draws per few-shot point.
        half_subsets: random half-band subsets to average over.
        seed: seed of folds, draws and subsets.
    """

    folds: int = 5
    ks: tuple[int, ...] = (1, 5, 10)
    shots: tuple[int, ...] = (1, 5, 10, 20)
    draws: int = 20
    half_subsets: int = 5
    seed: int = 0


@dataclass
class ModelResult:
    """Numbers measured for one embedder."""

    name: str
    model: str
    knn: dict[str, float] = field(default_factory=dict)
    logreg: float = 0.0
    few_shot_logreg: dict[str, list[float]] = field(default_factory=dict)
    few_shot_knn: dict[str, list[float]] = field(default_factory=dict)
    bands: dict[str, dict[str, float]] = field(default_factory=dict)
    ben_s1_to_s2_top1: float | None = None
    embed_chips_per_s: float = 0.0
    holdout: dict[str, float] = field(default_factory=dict)


def half_band_subsets(bands: tuple[str, ...], n: int, seed: int) -> list[tuple[str, ...]]:
    """``n`` random subsets with half of ``bands`` (rounded down), fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    return [tuple(sorted(rng.choice(bands, size=len(bands) // 2, replace=False))) for _ in range(n)]


def with_bands(batch: ChipBatch, names: tuple[str, ...]) -> ChipBatch:
    """The optical modality of ``batch`` restricted to the bands ``names``."""
    return ChipBatch({"optical": batch.modalities["optical"].select_bands(list(names))})


def ben_crops(root: Path, step: int = 28) -> tuple[ChipBatch, ChipBatch, np.ndarray]:
    """Grid crops of every BigEarthNet pair: (S2-only batch, S1-only batch, patch id per crop)."""
    scenes = sources.load_bigearthnet(root)
    opt, sar, pid = [], [], []
    for i, (a, b) in enumerate(zip(scenes.arrays["optical"], scenes.arrays["sar"], strict=True)):
        for y in range(0, a.shape[1] - sources.CHIP_PX + 1, step):
            for x in range(0, a.shape[2] - sources.CHIP_PX + 1, step):
                opt.append(a[:, y : y + sources.CHIP_PX, x : x + sources.CHIP_PX])
                sar.append(b[:, y : y + sources.CHIP_PX, x : x + sources.CHIP_PX])
                pid.append(i)
    from embedder.sensors import get_sensor

    s2 = get_sensor(scenes.sensors["optical"], list(scenes.bands["optical"]))
    s1 = get_sensor(scenes.sensors["sar"], list(scenes.bands["sar"]))
    return (
        ChipBatch({"optical": sources.modality_batch(s2, np.stack(opt), scenes.bands["optical"])}),
        ChipBatch({"sar": sources.modality_batch(s1, np.stack(sar), scenes.bands["sar"])}),
        np.array(pid),
    )


class WhitenedStats:
    """Channel statistics whitened on unlabelled chips: the stronger classical baseline.

    The same statistics as ``stats``, with the output whitening the learned model gets
    (:func:`embedder.whiten.whitening`, fitted on the same kinds of unlabelled chips), so
    the table shows what learning adds beyond whitening.
    """

    name = "stats-white"

    def __init__(self, batches: list[ChipBatch], eps: float = 0.01) -> None:
        from embedder.baseline import ChannelStats
        from embedder.registry import config_hash
        from embedder.whiten import whitening

        self.base = ChannelStats()
        self.eps = eps
        self.dim = self.base.dim
        self.mean, self.proj = whitening(np.vstack([self.base.features(b) for b in batches]), eps)
        self.version = config_hash(self.base.version, self.mean.tobytes(), self.proj.tobytes())

    def config(self) -> dict[str, Any]:
        """The baseline's configuration plus the whitening rule."""
        return self.base.config() | {"whitening": f"PCA, eps {self.eps}"}

    def normalisation(self) -> dict[str, Any]:
        """Same as the baseline's."""
        return self.base.normalisation()

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Unit-length whitened statistics."""
        from embedder.registry import l2_normalise

        f = self.base.features(batch)
        z = ((f - self.mean) @ self.proj).astype(np.float32)
        z[~(f != 0).any(axis=1)] = 0.0  # chips with no data keep zero rows
        return l2_normalise(z)


def unlabelled_batches(root: str | Path | None = None, n: int = 512, seed: int = 0) -> list[ChipBatch]:
    """Unlabelled chips of every training source (EuroSAT, BigEarthNet, Landsat-8, global layers).

    Multimodal sources also appear once per modality alone (the same chips).
    """
    from embedder.globe.layers import training_chip_batch

    root = datapath.data_dir(root)
    rng = np.random.default_rng(seed)
    out = [sources.load_eurosat(root).batch]
    out.append(sources.random_crops(sources.load_bigearthnet(root), n, rng))
    out.append(sources.random_crops(sources.load_landsat(root), n, rng))
    out.append(training_chip_batch(root, n=n, seed=seed))
    # each modality of a multimodal source alone too, as the learned model's whitening sees them
    return out + [ChipBatch({m: mb}) for b in out if len(b.modalities) > 1 for m, mb in b.modalities.items()]


def evaluate_model(
    name: str,
    emb: Embedder,
    chips: sources.LabelledChips,
    folds: np.ndarray,
    cfg: EvalConfig,
    ben: tuple[ChipBatch, ChipBatch, np.ndarray] | None,
) -> ModelResult:
    """All probes for one embedder."""
    y = chips.labels
    x = emb.embed(chips.batch)
    res = ModelResult(name=name, model=model_id(emb), embed_chips_per_s=embed_throughput(emb, chips.batch))
    res.knn = {f"k{k}": probes.blocked_cv(x, y, folds, "knn", k) for k in cfg.ks}
    res.logreg = probes.blocked_cv(x, y, folds, "logreg")
    for s in cfg.shots:
        res.few_shot_logreg[str(s)] = list(probes.few_shot(x, y, folds, s, "logreg", cfg.draws, cfg.seed))
        res.few_shot_knn[str(s)] = list(probes.few_shot(x, y, folds, s, "knn", cfg.draws, cfg.seed))
    all_bands = chips.batch.modalities["optical"].bands
    subsets = {f"half{i}": b for i, b in enumerate(half_band_subsets(all_bands, cfg.half_subsets, cfg.seed))}
    subsets["rgb"] = RGB
    subsets["landsat_like"] = LANDSAT_LIKE
    for key, names in subsets.items():
        xs = emb.embed(with_bands(chips.batch, names))
        res.bands[key] = {
            "knn5": probes.blocked_cv(xs, y, folds, "knn", 5),
            "knn5_full_seeds": _mixed_knn(x, xs, y, folds),
            "few5_logreg": probes.few_shot(xs, y, folds, 5, "logreg", max(5, cfg.draws // 4), cfg.seed)[0],
        }
    res.holdout = holdout_probes(emb, chips, x, subsets, cfg)
    if ben is not None:
        s2, s1, pid = ben
        a, b = emb.embed(s1.take(np.arange(len(pid)))), emb.embed(s2)
        hit = pid[np.argmax(a @ b.T, axis=1)] == pid
        res.ben_s1_to_s2_top1 = float(hit.mean())
    return res


HOLDOUT_DRAWS = 30


def holdout_probes(
    emb: Embedder,
    chips: sources.LabelledChips,
    x: np.ndarray,
    subsets: dict[str, tuple[str, ...]],
    cfg: EvalConfig,
) -> dict[str, float]:
    """The region hold-out: chips of whole H3 res-1 cells, queried with every other chip as seeds.

    ``knn1``/``knn5``: all other chips are seeds; ``few5``: kNN5 from 5 seeds per class,
    mean of 30 draws; ``half``: a random half of the bands for seeds and queries alike;
    ``half_star``: queries with half the bands, seeds with all (means over the subsets).
    """
    y = chips.labels
    te = probes.region_holdout(chips.lat, chips.lon, cfg.seed)
    tr = ~te
    out = {
        "n": float(te.sum()),
        "knn1": float((probes.knn_predict(x[tr], y[tr], x[te], 1) == y[te]).mean()),
        "knn5": float((probes.knn_predict(x[tr], y[tr], x[te], 5) == y[te]).mean()),
    }
    rng = np.random.default_rng(cfg.seed)
    accs = []
    for _ in range(HOLDOUT_DRAWS):
        pick = probes.draw_shots(np.flatnonzero(tr), y, 5, rng)
        accs.append(float((probes.knn_predict(x[pick], y[pick], x[te], 5) == y[te]).mean()))
    out["few5"] = float(np.mean(accs))
    half, star = [], []
    for key, names in subsets.items():
        if not key.startswith("half"):
            continue
        xs = emb.embed(with_bands(chips.batch, names))
        half.append(float((probes.knn_predict(xs[tr], y[tr], xs[te], 5) == y[te]).mean()))
        star.append(float((probes.knn_predict(x[tr], y[tr], xs[te], 5) == y[te]).mean()))
    out["half"] = float(np.mean(half))
    out["half_star"] = float(np.mean(star))
    return out


def embed_throughput(emb: Embedder, batch: ChipBatch, n: int = 1024) -> float:
    """Chips per second embedding ``n`` chips (the batch repeated), after a warm-up call."""
    rows = np.resize(np.arange(len(batch)), n)
    big = batch.take(rows)
    emb.embed(batch.take(rows[:64]))
    t0 = time.perf_counter()
    emb.embed(big)
    return round(n / max(time.perf_counter() - t0, 1e-9), 1)


def _mixed_knn(seeds_x: np.ndarray, query_x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> float:
    correct = 0
    for f in np.unique(folds):
        te = folds == f
        correct += int((probes.knn_predict(seeds_x[~te], y[~te], query_x[te], 5) == y[te]).sum())
    return correct / len(y)


def half_mean(res: ModelResult, key: str) -> float:
    """Mean of a band-robustness number over the random half-band subsets."""
    vals = [v[key] for k, v in res.bands.items() if k.startswith("half")]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(
    models: dict[str, Callable[[], Embedder]],
    data_dir: str | Path | None = None,
    cfg: EvalConfig | None = None,
) -> dict[str, Any]:
    """Run the protocol for every named embedder factory and return a JSON-able report."""
    cfg = cfg or EvalConfig()
    root = datapath.data_dir(data_dir)
    chips = sources.load_eurosat(root)
    folds = probes.spatial_folds(chips.lat, chips.lon, cfg.folds, cfg.seed)
    try:
        ben = ben_crops(root)
    except Exception as exc:  # BigEarthNet is optional for the EuroSAT table
        log.warning("BigEarthNet retrieval skipped: %s", exc)
        ben = None
    results = []
    for name, factory in models.items():
        log.info("evaluating %s", name)
        results.append(asdict(evaluate_model(name, factory(), chips, folds, cfg, ben)))
    return {
        "protocol": asdict(cfg)
        | {
            "dataset": "EuroSAT-MS (data/eurosat_ms)",
            "n_chips": len(chips.labels),
            "n_classes": len(np.unique(chips.labels)),
            "split": f"spatially blocked {cfg.folds}-fold CV, H3 res-{probes.BLOCK_RES} blocks",
            "half_subsets": half_band_subsets(
                chips.batch.modalities["optical"].bands, cfg.half_subsets, cfg.seed
            ),
            "ben_crops": None if ben is None else len(ben[2]),
            "holdout": "whole H3 res-1 cells, seeded draw until >= 22% of the chips "
            "(embedder.model.probes.region_holdout)",
        },
        "results": results,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table (accuracy in %)."""
    head = (
        f"{'model':<22}{'kNN1':>6}{'kNN5':>6}{'kNN10':>6}{'LR':>6} | "
        f"{'LR@1':>6}{'LR@5':>6}{'LR@10':>6}{'LR@20':>6}{'kNN@5':>6} | "
        f"{'half':>6}{'half*':>6}{'RGB':>6}{'L8':>6} | {'S1>S2':>6}{'emb/s':>8} | "
        f"{'hoK1':>6}{'hoK5':>6}{'ho@5':>6}{'hoHf':>6}{'hoHf*':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        res = ModelResult(**r)
        fs = res.few_shot_logreg
        ben = "   n/a" if res.ben_s1_to_s2_top1 is None else f"{100 * res.ben_s1_to_s2_top1:6.1f}"
        lines.append(
            f"{res.name:<22}"
            + "".join(f"{100 * res.knn[f'k{k}']:6.1f}" for k in (1, 5, 10))
            + f"{100 * res.logreg:6.1f} | "
            + "".join(f"{100 * fs[s][0]:6.1f}" for s in ("1", "5", "10", "20"))
            + f"{100 * res.few_shot_knn['5'][0]:6.1f} | "
            + f"{100 * half_mean(res, 'knn5'):6.1f}{100 * half_mean(res, 'knn5_full_seeds'):6.1f}"
            + f"{100 * res.bands['rgb']['knn5']:6.1f}{100 * res.bands['landsat_like']['knn5']:6.1f} | "
            + f"{ben}{res.embed_chips_per_s:8.0f} | "
            + "".join(
                f"{100 * res.holdout.get(k, float('nan')):6.1f}"
                for k in ("knn1", "knn5", "few5", "half", "half_star")
            )
        )
    p = report["protocol"]
    lines.append("")
    lines.append(
        f"{p['dataset']}, {p['n_chips']} chips, {p['n_classes']} classes, {p['split']}. "
        f"kNN/LR: accuracy %; LR@n / kNN@5: n labels per class, mean of {p['draws']} draws; "
        "half: kNN5 with a random half of the bands (mean of subsets), half*: same but seeds keep "
        "all bands; RGB / L8: kNN5 with RGB only / Landsat-8 band set; S1>S2: BigEarthNet "
        "cross-modal retrieval top-1 (same patch); emb/s: 64x64 chips embedded per second; "
        "ho*: region hold-out (whole H3 res-1 cells, never fitted or tuned on; earthvec-mm and "
        "stats-white did see its chips unlabelled): kNN1/kNN5 with all other chips as seeds, @5: "
        "kNN5 from 5 seeds per class (30 draws), Hf/Hf*: half the bands everywhere / in the queries."
    )
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON atomically."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, json.dumps(report, indent=1, default=float).encode())
    return out

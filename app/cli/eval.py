"""``earthvec eval [--checkpoint PATH] [--ablations DIR] [--json PATH]``: probes, few-shot, robustness."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

HELP = "Evaluate embedders with kNN/linear probes and few-shot curves."

DEFAULT_JSON = "eval.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec eval``."""
    p.add_argument("--checkpoint", default=None, help="earthvec-mm checkpoint (default: the shipped one)")
    p.add_argument(
        "--ablations",
        default="data/models/ablations",
        help="folder of ablation checkpoints (earthvec-mm-no-*.pt) to include if present",
    )
    p.add_argument(
        "--models",
        default="earthvec-tex,tex-signature,tex-texture,tex-unfitted,stats,stats-white,earthvec-mm,random-init,ablations",
        help="comma-separated subset of: earthvec-tex, tex-signature, tex-texture, tex-unfitted, "
        "stats, stats-white, earthvec-mm, random-init, ablations",
    )
    p.add_argument("--data", default=None, help="data folder (default: <repo>/data)")
    p.add_argument("--draws", type=int, default=20, help="random draws per few-shot point (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of folds, draws and band subsets")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for embedding (default 2)")
    p.add_argument(
        "--json", default=DEFAULT_JSON, help=f"where to write the JSON report (default {DEFAULT_JSON})"
    )


def _loader(path: object) -> Callable[[], Any]:
    from embedder.model.embedder import MultimodalEmbedder

    return lambda: MultimodalEmbedder(str(path))


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table and write the JSON report."""
    from pathlib import Path

    import torch

    from embedder.model.embedder import MultimodalEmbedder
    from embedder.model.evaluate import (
        EvalConfig,
        WhitenedStats,
        evaluate,
        format_table,
        unlabelled_batches,
        write_report,
    )
    from embedder.model.train import random_init_checkpoint
    from embedder.registry import Embedder, get_embedder

    torch.set_num_threads(args.threads)
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    if "earthvec-mm" in wanted:  # a bad checkpoint fails now, not after the data is loaded
        from embedder.model.checkpoint import load_checkpoint

        load_checkpoint(args.checkpoint)
    models: dict[str, Callable[[], Embedder]] = {}
    for name in ("earthvec-tex", "tex-signature", "tex-texture", "tex-unfitted"):
        if name in wanted:
            models[name] = lambda name=name: get_embedder(name)  # type: ignore[misc]
    if "stats" in wanted:
        models["stats"] = lambda: get_embedder("stats")
    if "stats-white" in wanted:
        models["stats-white"] = lambda: WhitenedStats(unlabelled_batches(args.data))
    if "earthvec-mm" in wanted:
        models["earthvec-mm"] = lambda: MultimodalEmbedder(args.checkpoint)
    if "random-init" in wanted:
        models["random-init"] = lambda: MultimodalEmbedder(
            random_init_checkpoint(args.seed, data_dir=args.data), name="earthvec-mm-random"
        )
    if "ablations" in wanted and Path(args.ablations).is_dir():
        for path in sorted(Path(args.ablations).glob("earthvec-mm-no-*.pt")):
            models[path.stem.removeprefix("earthvec-mm-")] = _loader(path)
    report = evaluate(models, args.data, EvalConfig(draws=args.draws, seed=args.seed))
    report["protocol"]["torch_threads"] = torch.get_num_threads()
    print(format_table(report))
    out = write_report(report, args.json)
    print(f"\nwrote {out}")
    return 0

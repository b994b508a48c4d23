"""``earthvec train [--out PATH] [--steps N] [--seed S] [--no-OBJECTIVE] [--ablations] [--check]``."""

from __future__ import annotations

import argparse

HELP = "Fit earthvec-tex (default) or train the earthvec-mm network, and write the model file."

DEFAULT_OUT = "embedder/weights/earthvec-mm.pt"
ABLATION_DIR = "data/models/ablations"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec train``."""
    p.add_argument(
        "--model",
        default="earthvec-tex",
        choices=["earthvec-tex", "earthvec-mm"],
        help="earthvec-tex (default: fit the spectral-texture model, seconds) or earthvec-mm (torch network)",
    )
    p.add_argument(
        "--out",
        default=None,
        help=f"file to write (default: the shipped file, embedder/tex/earthvec-tex.npz or {DEFAULT_OUT})",
    )
    p.add_argument("--data", default=None, help="data folder (default: $EARTHVEC_DATA or data/)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the shipped checkpoint was trained with 1 thread, and float "
        "reductions differ across thread counts, so only the same value reproduces its version)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    for obj in ("views", "cross-modal", "colearn", "mae"):
        p.add_argument(f"--no-{obj}", action="store_true", help=f"switch the {obj} objective off")
    p.add_argument(
        "--ablations",
        action="store_true",
        help=f"also train one model without each objective into {ABLATION_DIR}/",
    )
    p.add_argument("--ablation-dir", default=ABLATION_DIR, help="where --ablations writes")
    p.add_argument(
        "--check",
        action="store_true",
        help="compare the new checkpoint's version with the existing file at --out instead of "
        "overwriting it (reproducibility check); exit status 1 when they differ",
    )


def run_tex(args: argparse.Namespace) -> int:
    """Fit earthvec-tex; write it, or with ``--check`` compare its version with the existing file."""
    from importlib import resources
    from pathlib import Path

    from embedder.tex.fit import fit_model
    from embedder.tex.model import FILE_NAME, NAME, load_model

    out = Path(args.out) if args.out else Path(str(resources.files("embedder.tex").joinpath(FILE_NAME)))
    if args.check and not out.is_file():
        print(f"{NAME}: nothing to compare: {out} does not exist")
        return 1
    old = load_model(out) if args.check else None  # a file that is no tex model fails before the fit
    model = fit_model(args.data)
    info = model.config["info"]
    line = f"{NAME}@{model.version}  dim={model.dim}  fitted on {info['sources']} in {info['fit_seconds']} s"
    if old is not None:
        same = old.version == model.version
        print(f"{line}\n  {'reproduced' if same else 'DIFFERENT from'} {out} ({NAME}@{old.version})")
        return 0 if same else 1
    model.save(out)
    print(f"{line}\n  wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Train, write the checkpoint(s) and print version and throughput."""
    if args.model == "earthvec-tex":
        return run_tex(args)
    args.out = args.out or DEFAULT_OUT
    from dataclasses import replace
    from pathlib import Path

    import torch

    from embedder.model.checkpoint import load_checkpoint, save_checkpoint
    from embedder.model.config import OBJECTIVES, TrainConfig
    from embedder.model.train import train

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(seed=args.seed)
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    for obj in OBJECTIVES:
        if getattr(args, f"no_{obj}"):
            cfg = cfg.without(obj)
    jobs = [(Path(args.out), cfg)]
    if args.ablations:
        for obj in cfg.objectives():
            jobs.append(
                (Path(args.ablation_dir) / f"earthvec-mm-no-{obj.replace('_', '-')}.pt", cfg.without(obj))
            )
    status = 0
    for out, c in jobs:
        ckpt = train(c, data_dir=args.data, device=args.device)
        info = ckpt.info
        line = (
            f"earthvec-mm@{ckpt.version}  objectives={','.join(c.objectives())}  steps={c.steps}  "
            f"{info['train_seconds']} s  {info['train_views_per_s']} views/s ({info['device']}, "
            f"{info['threads']} threads)"
        )
        if args.check and out.is_file():
            old = load_checkpoint(out)
            same = old.version == ckpt.version
            print(f"{line}\n  {'reproduced' if same else 'DIFFERENT from'} {out} (earthvec-mm@{old.version})")
            status = status or (0 if same else 1)
        else:
            save_checkpoint(ckpt, out)
            print(f"{line}\n  wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return status

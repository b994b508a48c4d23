"""Weight files for pretrained models: find them locally, fetch only when asked, load them strictly.

``--weights`` is a path to a torch state-dict file, or the name of a published file in the
plugin's table (``SENTINEL2_ALL_MOCO`` ...). A name is looked up in the local caches
(``$EARTHVEC_WEIGHTS_DIR``, then torch.hub's ``checkpoints`` folder, where torchgeo and
``torch.hub`` keep what they downloaded); it is downloaded only with ``allow_download=True``
(``--allow-download``), never implicitly.

Loading accepts the usual wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and key prefixes
(``module.``, ``backbone.``, ``encoder.``, ``model.``), then checks the keys strictly: every
parameter and buffer of the architecture must be present with its shape, and nothing else may
be left over, except a classifier head the embedding does not use (``fc.*``, ``head.*``,
``classifier.*``) and BatchNorm's ``num_batches_tracked`` step counters (unused at inference).
When the architecture sits under one prefix beside other modules (a MoCo checkpoint's
projection head), the keys outside that prefix are ignored and listed in the model config.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedder.errors import InputNotFoundError, WeightsError
from embedder.pretrained.specs import ModelSpec

CACHE_ENV = "EARTHVEC_WEIGHTS_DIR"
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "teacher", "student")
PREFIXES = (
    "module.",
    "backbone.",
    "encoder.",
    "model.",
    "encoder_q.",
    "module.encoder_q.",
    "module.backbone.",
)
HEAD_PREFIXES = ("fc.", "head.", "classifier.", "head_dist.")
OPTIONAL_SUFFIX = ".num_batches_tracked"
HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's HASH_REGEX: name-<sha256 prefix>.ext


@dataclass
class LoadedWeights:
    """A strictly checked state dict and where it came from.

    Attributes:
        state_dict: the tensors, keyed as the architecture names them.
        sha256: hash of the used tensors (names, dtypes, shapes, values), independent of the
            file's wrapper and prefix: the weights part of the model version.
        path: the file they were read from.
        prefix: the key prefix that was stripped ("" if none).
        ignored: keys in the file that are not part of the embedding network.
    """

    state_dict: dict[str, torch.Tensor]
    sha256: str
    path: str
    prefix: str = ""
    ignored: list[str] = field(default_factory=list)


def cache_dirs() -> list[Path]:
    """Folders searched for a named weights file, in order."""
    dirs = [Path(os.environ[CACHE_ENV]).expanduser()] if os.environ.get(CACHE_ENV) else []
    return [*dirs, Path(torch.hub.get_dir()) / "checkpoints"]


def resolve(weights: str | Path | None, spec: ModelSpec, allow_download: bool = False) -> Path:
    """The local file that ``--weights`` names, downloading it only when ``allow_download``.

    Args:
        weights: a file path, or a name from ``spec.weights``.
        spec: the model the weights are for.
        allow_download: fetch a named file that is in no local cache (``--allow-download``).

    Raises:
        WeightsError: no weights given, or a named file is not cached and downloading was not allowed.
        InputNotFoundError: ``weights`` is neither a file nor a known name.
    """
    names = ", ".join(spec.weights) or "none published"
    if weights is None or str(weights) == "":
        raise WeightsError(
            f"{spec.name} has no built-in weights; pass --weights FILE (a torch state dict for "
            f"{spec.arch}) or a published name ({names}) with --allow-download to fetch it once"
        )
    path = Path(weights).expanduser()
    if path.is_file():
        return path
    source = {k.upper(): v for k, v in spec.weights.items()}.get(str(weights).split(".")[-1].upper())
    if source is None:
        raise InputNotFoundError(
            f"--weights {str(weights)!r} is neither a file nor a published weights name of {spec.name} "
            f"({names}); give the path of a state-dict file"
        )
    for folder in cache_dirs():
        if (folder / source.filename).is_file():
            return folder / source.filename
    if not allow_download:
        where = ", ".join(str(d) for d in cache_dirs())
        raise WeightsError(
            f"--weights {weights} is not in the local cache ({where}); add --allow-download to fetch "
            f"{source.url} once (from {source.source}), or download it yourself and pass --weights FILE"
        )
    return download(source.url, cache_dirs()[0] / source.filename)


def download(url: str, dst: Path) -> Path:
    """Fetch ``url`` to ``dst`` (checking the SHA-256 prefix in its name); only on explicit request."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    m = HASH_PREFIX.search(dst.name)
    try:
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=True)
    except Exception as exc:  # network, HTTP or hash failure: say which file and what to do
        raise WeightsError(
            f"could not download {url} ({exc}); fetch it another way and pass --weights FILE"
        ) from exc
    return dst


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors in a torch checkpoint file, unwrapped from ``state_dict``/``model`` containers.

    Raises:
        WeightsError: the file is not a torch checkpoint of tensors.
    """
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            "save the model's state_dict with torch.save"
        ) from exc
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path} holds no state dict of tensors; save model.state_dict() with torch.save")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors; save model.state_dict() with torch.save")
    return tensors


def _under(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def match(
    sd: dict[str, torch.Tensor], expected: dict[str, torch.Size], model: str, path: str = "the file"
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Pick the prefix under which ``sd`` holds the architecture and check its keys strictly.

    Args:
        sd: the file's tensors.
        expected: parameter and buffer names of the architecture with their shapes.
        model: the model's name (for messages).
        path: the file (for messages).

    Returns:
        (state dict keyed like the architecture, stripped prefix, ignored keys).

    Raises:
        WeightsError: naming the missing, unexpected or mis-shaped keys.
    """
    best = max(("", *PREFIXES), key=lambda p: len(set(_under(sd, p)) & set(expected)))
    sub = _under(sd, best)
    outside = sorted(k for k in sd if not k.startswith(best))
    unexpected = sorted(k for k in sub if k not in expected)
    heads = [k for k in unexpected if k.startswith(HEAD_PREFIXES) or k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in unexpected if k not in heads]
    missing = sorted(k for k in expected if k not in sub and not k.endswith(OPTIONAL_SUFFIX))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:6])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:6])})")
        raise WeightsError(
            f"{path} does not fit {model}: {'; '.join(parts)} key(s)"
            + (f" after stripping the prefix {best!r}" if best else "")
            + "; pass a state dict of the same architecture (torchvision/timm parameter names)"
        )
    wrong = [
        (k, tuple(sub[k].shape), tuple(expected[k]))
        for k in expected
        if k in sub and sub[k].shape != expected[k]
    ]
    if wrong:
        k, got, want = wrong[0]
        hint = (
            f" (the file's first convolution takes {got[1]} bands, {model} takes {want[1]})"
            if k.endswith("conv1.weight") and len(got) == 4 and len(want) == 4 and got[1] != want[1]
            else ""
        )
        raise WeightsError(
            f"{path} does not fit {model}: {len(wrong)} tensor(s) of another shape, e.g. {k} is {got} "
            f"in the file and {want} in the model{hint}; pass weights of the same architecture"
        )
    used = {k: v for k, v in sub.items() if k in expected}
    return used, best, outside + heads


def tensors_sha256(sd: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and values of ``sd`` by key (step counters left out)."""
    h = hashlib.sha256()
    for k in sorted(sd):
        if k.endswith(OPTIONAL_SUFFIX):  # a training step counter: no effect on the vectors
            continue
        t = sd[k].detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(sd[k].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load(path: str | Path, expected: dict[str, torch.Size], model: str) -> LoadedWeights:
    """Read ``path`` and strictly match it to the architecture whose keys/shapes are ``expected``."""
    sd = read_state_dict(path)
    used, prefix, ignored = match(sd, expected, model, str(path))
    return LoadedWeights(used, tensors_sha256(used), str(path), prefix, ignored)


def expected_keys(net: torch.nn.Module) -> dict[str, torch.Size]:
    """Parameter and buffer names of ``net`` with their shapes."""
    return {k: v.shape for k, v in net.state_dict().items()}


def save_seeded(net: torch.nn.Module, path: str | Path, seed: int) -> Path:
    """Re-initialise ``net``'s parameters from ``seed`` (normal, BatchNorm statistics jittered) and save them.

    For tests and benchmarks: a weights file of the right architecture made here, never downloaded.
    """
    gen = torch.Generator().manual_seed(seed)
    sd = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not v.is_floating_point():
            out[k] = v.clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=gen) + 0.5
        elif k.endswith(("running_mean", "bias")):
            out[k] = torch.randn(v.shape, generator=gen) * 0.1
        elif v.ndim == 1:  # BatchNorm scale
            out[k] = torch.rand(v.shape, generator=gen) * 0.5 + 0.5
        else:
            fan_in = int(np.prod(v.shape[1:]))
            out[k] = torch.randn(v.shape, generator=gen) * (2.0 / fan_in) ** 0.5
    torch.save(out, str(path))
    return Path(path)

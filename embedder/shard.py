"""One shard function for every build: ``run_shard(shard_spec, embedder_spec) -> ShardResult``.

A *shard spec* is everything needed to make one partition's rows, small and picklable
(the raster build's :class:`~embedder.raster_shard.RasterShard`, the global build's
:class:`~embedder.globe.shards.GlobalShard`): its partition, its content key, the
:class:`~embedder.storage.ShardTarget` it writes to, ``read()`` (the I/O, run ahead by
a prefetch thread) and ``compute(payload, embedder, batch_size)`` (embedding and the
table). An :class:`EmbedderSpec` names the model and its options; ``load()`` builds it
once per process. :func:`run_shard` reads, embeds and writes the upsert durably through
the storage layer and returns what the driver records (:class:`ShardResult`), so it runs
the same in this process, in a forked worker or in a Ray actor.

Batch size: one rule, :func:`choose_batch_size` (the ``--batch-size`` given, else 256
chips on CPU and, on a CUDA device, a share of its free memory), applied once to the build
and to the embedder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from embedder.contract import ShardRecord
from embedder.errors import EarthvecError
from embedder.interface import Embedder
from embedder.storage.shardfile import ShardTarget, write_shard_file

CPU_BATCH = 256
CUDA_BATCH = 2048
CUDA_BATCH_MIN = 256
CUDA_BATCH_MAX = 8192
CUDA_BYTES_PER_CHIP = 8 * 2**20
CUDA_MEMORY_SHARE = 0.25

_LOADED: dict[Any, Embedder] = {}  # per process: what EmbedderSpec.load built (inherited by forks)


def choose_batch_size(device: str | None = None, requested: int | None = None) -> int:
    """The one batch-size rule: ``requested``, else 256 chips on CPU and, on CUDA, from free memory.

    On a CUDA device the batch is a quarter of the device's free memory over
    :data:`CUDA_BYTES_PER_CHIP` (a ResNet-50 at 224 px in fp32 needs about that per chip at
    its widest layer), rounded down to a multiple of 256 and kept within
    [:data:`CUDA_BATCH_MIN`, :data:`CUDA_BATCH_MAX`]; :data:`CUDA_BATCH` when the free
    memory cannot be read.

    Raises:
        EarthvecError: ``requested`` below 1.
    """
    if requested is not None:
        if requested < 1:
            raise EarthvecError(f"--batch-size {requested}: give at least 1 chip per batch")
        return int(requested)
    if not (device and str(device).startswith("cuda")):
        return CPU_BATCH
    free = cuda_free_bytes(str(device))
    if free is None:
        return CUDA_BATCH
    n = int(free * CUDA_MEMORY_SHARE // CUDA_BYTES_PER_CHIP) // 256 * 256
    return max(CUDA_BATCH_MIN, min(CUDA_BATCH_MAX, n))


def cuda_free_bytes(device: str) -> int | None:
    """Free memory of a CUDA device in bytes (None without torch or CUDA)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    except Exception:  # noqa: BLE001 - no torch, no driver, a device index out of range
        return None


@dataclass(frozen=True)
class EmbedderSpec:
    """A model by name with its options (picklable; the embedder is built once per process).

    Attributes:
        model: registered embedder name.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (torch models only; None: their default).
        batch_size: chips per embedder call (see :func:`choose_batch_size`).
        options: further factory keyword arguments as sorted pairs (e.g. weights).
        instance: an already built embedder (this process and its forks only; not pickled).
    """

    model: str
    device: str | None = None
    batch_size: int = CPU_BATCH
    options: tuple[tuple[str, Any], ...] = ()
    instance: Embedder | None = field(default=None, compare=False, repr=False)

    def _key(self) -> Any:
        if self.instance is not None:
            return ("instance", id(self.instance))
        return (self.model, self.device, self.options)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.instance is not None:  # forks find it in _LOADED; elsewhere it cannot travel
            _LOADED[self._key()] = self.instance
            state["_token"] = self._key()
        state["instance"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        token = state.pop("_token", None)
        if token is not None:
            if token not in _LOADED:
                raise EarthvecError(
                    f"the {state['model']} embedder instance was not sent to this worker; pass the "
                    "model by name to run on workers that are not forked from the driver"
                )
            state["instance"] = _LOADED[token]
        self.__dict__.update(state)

    def load(self) -> Embedder:
        """The embedder (built on first use in this process, then reused).

        Raises:
            EarthvecError: unknown model, or ``device`` given for a model without devices.
        """
        if self.instance is not None:  # the caller's own object: not cached (forks: share_with_forks)
            if hasattr(self.instance, "batch_size"):
                self.instance.batch_size = self.batch_size
            return self.instance
        key = self._key()
        emb = _LOADED[key] if key in _LOADED else self._build()
        if hasattr(emb, "batch_size"):
            emb.batch_size = self.batch_size  # one batch size: the embedder's own loop follows it
        _LOADED[key] = emb
        return emb

    def _build(self) -> Embedder:
        from embedder.registry import get_embedder

        kwargs = dict(self.options)
        if self.device is None:
            return get_embedder(self.model, **kwargs)
        cpu_only = EarthvecError(
            f"model {self.model} runs on the CPU only (numpy): drop --device {self.device}"
        )
        try:
            emb = get_embedder(self.model, **kwargs, device=self.device)
        except TypeError as exc:  # a numpy embedder has no device
            if str(self.device) != "cpu":
                raise cpu_only from exc
            emb = get_embedder(self.model, **kwargs)
        if str(self.device) != "cpu" and not hasattr(emb, "device"):
            raise cpu_only
        return emb

    @contextmanager
    def share_with_forks(self) -> Iterator[None]:
        """Make an embedder instance findable by workers forked inside this block."""
        if self.instance is None:
            yield
            return
        _LOADED[self._key()] = self.instance
        try:
            yield
        finally:
            _LOADED.pop(self._key(), None)


@dataclass
class ShardOutput:
    """What a shard computed: its rows and the planned keys it dropped."""

    table: pa.Table
    delete: list[tuple[int, datetime | None]] = field(default_factory=list)
    rows_dropped_empty: int = 0
    rows_dropped_low_valid: int = 0


class ShardSpec(Protocol):
    """A unit of build work (see the module docstring); must be picklable."""

    partition: str
    key: str
    target: ShardTarget

    @property
    def n_rows(self) -> int:
        """Rows (chips) planned."""
        ...

    def read(self) -> Any:
        """The I/O part (pixels), run ahead of :meth:`compute` by the runner."""
        ...

    def compute(self, payload: Any, emb: Embedder, batch_size: int) -> ShardOutput:
        """Embed and assemble the contract table."""
        ...


@dataclass(frozen=True)
class ShardResult:
    """What a finished shard reports to the driver (picklable)."""

    record: ShardRecord
    rows_planned: int
    rows_written: int
    rows_dropped_empty: int
    rows_dropped_low_valid: int
    seconds: float


def run_shard(spec: ShardSpec, embedder: EmbedderSpec, payload: Any = None) -> ShardResult:
    """Read, embed and write one shard durably (the upsert of its partition); see module doc.

    Args:
        spec: the shard.
        embedder: the model (built once per process).
        payload: ``spec.read()`` when already read ahead.
    """
    t0 = time.perf_counter()
    emb = embedder.load()
    out = spec.compute(spec.read() if payload is None else payload, emb, embedder.batch_size)
    return write_output(spec, out, time.perf_counter() - t0)


def write_output(spec: ShardSpec, out: ShardOutput, seconds: float = 0.0) -> ShardResult:
    """Write a computed shard durably to ``spec.target`` (no lock needed) and report it.

    The last step of :func:`run_shard`, on its own for runners that write in another
    process than the one that computed (a Ray write task after a GPU actor).

    Args:
        spec: the shard.
        out: what ``spec.compute`` returned.
        seconds: time already spent on the shard (the write's own time is added).
    """
    t0 = time.perf_counter()
    record = write_shard_file(spec.target, out.table, out.delete)
    return ShardResult(
        record,
        spec.n_rows,
        out.table.num_rows,
        out.rows_dropped_empty,
        out.rows_dropped_low_valid,
        seconds + time.perf_counter() - t0,
    )

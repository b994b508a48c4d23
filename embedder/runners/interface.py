"""What a runner needs from a build: picklable specs, an embedder recipe and three steps.

The contract between a build and a runner (local loop or Ray Data):

* a list of **shard specs**: picklable objects, each with a ``name`` attribute that is
  deterministic (the same inputs and model give the same name in every run), so a rerun
  skips finished shards and equals a single-machine build row for row;
* an :class:`EmbedderSpec`: registry name and factory options (or a picklable instance),
  from which each worker builds the embedder once;
* a :class:`ShardJob` (picklable, holding the shared settings: database root, metadata,
  batch size) with ``read`` (CPU), ``embed`` (where the model lives) and ``write`` (CPU,
  one shard file per spec, written atomically under the spec's name);
* :class:`ShardResult` records (small, JSON-able) that the runner hands back to the
  driver, which records them (the build report, later the storage transaction).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from embedder.errors import ModelMismatchError
from embedder.interface import Embedder, model_id


@dataclass(frozen=True)
class EmbedderSpec:
    """A picklable recipe of an embedder: built once per worker with :meth:`build`.

    Attributes:
        name: registry name (``--model``).
        options: keyword arguments of the registry factory.
        instance: an embedder object to ship as is (pickled) instead of looking ``name`` up.
        expect: ``name@version`` the driver computed; a worker whose embedder differs
            (other weights or package version on that machine) refuses to embed.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    instance: Embedder | None = None
    expect: str | None = None

    @classmethod
    def of(cls, emb: Embedder, name: str | None = None, **options: Any) -> EmbedderSpec:
        """The spec of an embedder the driver built: by ``name`` when given, else the instance."""
        if name is not None:
            return cls(name, dict(options), None, model_id(emb))
        return cls(emb.name, {}, emb, model_id(emb))

    def build(self) -> Embedder:
        """The embedder (checked against :attr:`expect`).

        Raises:
            ModelMismatchError: when this machine builds another model version than the driver.
        """
        from embedder.registry import get_embedder

        emb = self.instance if self.instance is not None else get_embedder(self.name, **dict(self.options))
        if self.expect is not None and model_id(emb) != self.expect:
            raise ModelMismatchError(
                f"this worker builds {model_id(emb)} but the driver planned {self.expect}; install the "
                "same earthvec version and model weights on every worker"
            )
        return emb


@dataclass(frozen=True)
class ShardResult:
    """What writing one shard did (returned to the driver; JSON-able).

    Attributes:
        name: the shard's deterministic name (its file path relative to the database root).
        rows_planned: rows the shard set out to write.
        rows_written: rows in the written file (0: no file was written, every row dropped).
        rows_dropped_empty: rows without a valid pixel.
        rows_dropped_low_valid: rows at or below ``min_valid``.
        seconds: wall time of the three steps (read + embed + write) of this shard.
    """

    name: str
    rows_planned: int
    rows_written: int
    rows_dropped_empty: int = 0
    rows_dropped_low_valid: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class ShardJob(Protocol):
    """The three steps of one build; the object is pickled to every worker (keep it small)."""

    @property
    def embedder(self) -> EmbedderSpec:
        """The recipe each embedding worker builds its embedder from."""
        ...

    def read(self, spec: Any) -> Any:
        """CPU step: the pixels of one shard (anything picklable)."""
        ...

    def embed(self, emb: Embedder, spec: Any, pixels: Any) -> Any:
        """Embedding step: vectors of one shard (anything picklable) from its pixels."""
        ...

    def write(self, spec: Any, embedded: Any) -> ShardResult:
        """CPU step: write the shard file atomically under ``spec.name``; return its record."""
        ...


def run_local(
    job: ShardJob,
    specs: Iterable[Any],
    on_result: Callable[[ShardResult], None] | None = None,
    embedder: Embedder | None = None,
) -> list[ShardResult]:
    """Run the steps of every spec in this process, in order (the reference runner).

    Args:
        job: the build's steps.
        specs: shard specs (only the unfinished ones).
        on_result: called with each record as soon as its shard is written.
        embedder: an already built embedder (default ``job.embedder.build()``).
    """
    emb = embedder or job.embedder.build()
    out = []
    for spec in specs:
        t = time.perf_counter()
        res = job.write(spec, job.embed(emb, spec, job.read(spec)))
        res = ShardResult(**{**res.to_dict(), "seconds": time.perf_counter() - t})
        if on_result is not None:
            on_result(res)
        out.append(res)
    return out

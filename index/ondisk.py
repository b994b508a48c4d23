"""An index beyond RAM: IVF trained once, filled shard by shard, lists merged on disk, mmapped.

The steps are plain functions on one folder, so any runner can call them (a loop here, Ray
tasks in a distributed build):

1. :func:`train_ondisk` trains the coarse quantiser and the codes on a sample and writes
   ``trained.index`` (empty);
2. :func:`add_shard` (one call per shard, in any order, in parallel, on any machine sharing
   the folder) reads ``trained.index``, adds its ``(ids, vectors)`` blocks and writes the
   shard's IVF (``shard-NNNNN.index``), its vectors (``vectors-NNNNN.f32``, raw float32 rows,
   or ``.f16``, for exact re-ranking; none with ``vector_dtype="none"``, when the re-ranking
   reads the database's Parquet instead) and ids (``ids-NNNNN.i64``), then
   ``shard-NNNNN.json`` last: a shard
   whose JSON exists is done, so a rerun skips it;
3. :func:`merge_shards` merges the shards' inverted lists into one ``lists-KEY.ivfdata``
   (FAISS ``OnDiskInvertedLists`` through ``faiss.contrib.ondisk.merge_ondisk``) and writes
   ``populated-KEY.index`` and then ``ondisk.json`` naming them (a crash leaves the previous
   set in force);
4. :func:`open_ondisk` (:mod:`index.ondisk_index`) reads the quantiser into RAM and
   memory-maps the lists and vectors;
   :meth:`OnDiskIndex.search` finds ``k * k_factor`` candidates from the codes and re-ranks
   them exactly (:mod:`index.refine`).

The IVF stores *handles* (``shard << 40 | row``), not the caller's ids, so shards never need
each other's row counts; search maps handles back to the ids given to :func:`add_shard`.
:func:`build_ondisk` runs the four steps locally, adding shards in a loop, in local
processes, or as Ray tasks (``ray=RayOptions(...)``). The structure (codes, metric, ``nlist``)
comes from :func:`index.ondisk_plan.plan_ondisk`.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.contract import publish_file, temp_path
from index.ondisk_index import MANIFEST, OnDiskIndex, open_ondisk, read_manifest, write_json
from index.ondisk_plan import OnDiskPlan, plan_ondisk
from index.plan_rules import Block, IndexBuildError
from index.refine import VectorSource, handles

if TYPE_CHECKING:
    from embedder.ray_runner import RayOptions

__all__ = [
    "MANIFEST",
    "TRAINED",
    "IndexBuildError",
    "OnDiskIndex",
    "ShardInfo",
    "ShardSource",
    "add_shard",
    "build_ondisk",
    "done_shards",
    "merge_shards",
    "open_ondisk",
    "read_manifest",
    "train_ondisk",
]

TRAINED = "trained.index"
FORMAT = 1
DTYPES = {"float16": ".f16", "float32": ".f32", "none": ""}


def _metric(name: str) -> int:
    import faiss

    return faiss.METRIC_L2 if name == "l2" else faiss.METRIC_INNER_PRODUCT


def _write_index(index: Any, path: Path) -> None:
    import faiss

    tmp = temp_path(path)
    try:
        faiss.write_index(index, str(tmp))
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def shard_name(shard: int) -> str:
    """File stem of a shard (``shard-00007``)."""
    return f"shard-{shard:05d}"


# -- 1. train -----------------------------------------------------------------------------------


def train_ondisk(folder: str | Path, sample: np.ndarray, plan: OnDiskPlan, *, gpu: bool = False) -> Path:
    """Train the empty index of ``plan`` on ``sample`` and write ``folder/trained.index``.

    Args:
        folder: the index folder (created).
        sample: (m, d) float32 unit vectors, a uniform sample of the data.
        plan: from :func:`index.ondisk_plan.plan_ondisk`.
        gpu: run k-means on the GPU (needs a CUDA build of FAISS).

    Raises:
        IndexBuildError: the sample is empty or of another dimension than the plan.
    """
    import faiss

    if plan.vector_dtype not in DTYPES:
        raise IndexBuildError(f"vector dtype {plan.vector_dtype!r}; use one of {sorted(DTYPES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if sample.ndim != 2 or sample.shape[1] != plan.dim or len(sample) == 0:
        raise IndexBuildError(f"training sample of shape {sample.shape}; the plan needs (m > 0, {plan.dim})")
    index = faiss.index_factory(plan.dim, plan.factory, _metric(plan.metric))
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = plan.kmeans_iterations
    if gpu:
        from index.gpu import gpu_clustering_index

        ivf.clustering_index = gpu_clustering_index(plan.dim)
    if plan.two_level and not gpu:  # sqrt(nlist) groups, then sub-clusters: ~sqrt(nlist)x less work
        from faiss.contrib.clustering import two_level_clustering

        groups = int(math.sqrt(plan.nlist))
        kw = {"clustering_niter": plan.kmeans_iterations, "seed": 1234, "min_points_per_centroid": 20}
        cents, _ = two_level_clustering(sample, groups, plan.nlist, **kw)
        ivf.quantizer.add(np.ascontiguousarray(cents, dtype=np.float32))
        ivf.quantizer.is_trained = True
    index.train(sample)  # trains the codes only when the quantiser holds nlist centroids
    ivf.clustering_index = None  # type: ignore[assignment]
    path = folder / TRAINED
    _write_index(index, path)
    write_json(folder / "plan.json", plan.to_dict())
    return path


# -- 2. add one shard ---------------------------------------------------------------------------


@dataclass
class ShardInfo:
    """What :func:`add_shard` wrote."""

    shard: int
    rows: int
    index_file: str
    vectors_file: str
    ids_file: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def add_shard(
    folder: str | Path,
    shard: int,
    blocks: Iterable[Block],
    *,
    threads: int | None = None,
) -> ShardInfo:
    """Add one shard's blocks to a copy of ``trained.index``; write its files (see module doc).

    A plain function of picklable arguments plus an iterable, so a process pool or a Ray
    task can run it. Memory: the trained index, one block, and the shard's codes.

    Args:
        folder: the index folder holding ``trained.index``.
        shard: shard number (0 <= shard < 2**23), unique within the folder.
        blocks: ``(ids int64 (n,), vectors float32 (n, d))`` blocks of unit vectors.
        threads: OpenMP threads for FAISS (default: leave as is).

    Raises:
        IndexBuildError: missing ``trained.index``, bad shard number, or a block of another
            dimension.
    """
    import faiss

    folder = Path(folder)
    if not 0 <= shard < 2**23:
        raise IndexBuildError(f"shard number {shard} out of range [0, 2**23)")
    if not (folder / TRAINED).exists():
        raise IndexBuildError(f"{folder / TRAINED} is missing; run train_ondisk first")
    vector_dtype = str(json.loads((folder / "plan.json").read_text())["vector_dtype"])
    if threads:
        faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = faiss.read_index(str(folder / TRAINED))
    stem = shard_name(shard)
    store = vector_dtype != "none"
    vec_path = folder / f"vectors-{shard:05d}{DTYPES[vector_dtype] or '.none'}"
    ids_path = folder / f"ids-{shard:05d}.i64"
    vtmp, itmp = temp_path(vec_path), temp_path(ids_path)
    rows = 0
    try:
        with vtmp.open("wb") as vf, itmp.open("wb") as idf:
            for ids, x in blocks:
                x = np.ascontiguousarray(x, dtype=np.float32)
                if x.ndim != 2 or x.shape[1] != index.d:
                    raise IndexBuildError(f"a block has shape {x.shape}; the index holds dim {index.d}")
                index.add_with_ids(x, handles(shard, np.arange(rows, rows + len(x))))
                if store:
                    vf.write(x.astype(vector_dtype).tobytes())
                idf.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
                rows += len(x)
        _write_index(index, folder / f"{stem}.index")
        if store:  # each file durable before the shard's JSON marks it done
            publish_file(vtmp, vec_path)
        publish_file(itmp, ids_path)
    finally:
        vtmp.unlink(missing_ok=True)
        itmp.unlink(missing_ok=True)
    vec_name = vec_path.name if store else ""
    info = ShardInfo(shard, rows, f"{stem}.index", vec_name, ids_path.name, time.perf_counter() - t0)
    write_json(folder / f"{stem}.json", info.to_dict())
    return info


def done_shards(folder: str | Path) -> dict[int, ShardInfo]:
    """Shards whose files are complete (their JSON written last), by number."""
    out: dict[int, ShardInfo] = {}
    for p in sorted(Path(folder).glob("shard-*.json")):
        d = json.loads(p.read_text())
        info = ShardInfo(**d)
        vec_ok = not info.vectors_file or (Path(folder) / info.vectors_file).exists()
        if vec_ok and (Path(folder) / info.ids_file).exists():
            out[info.shard] = info
    return out


# -- 3. merge -----------------------------------------------------------------------------------


def merge_shards(folder: str | Path, *, keep_shard_indexes: bool = False) -> Path:
    """Merge every done shard's lists into one on-disk file and write ``ondisk.json``.

    Returns:
        The manifest path.

    Raises:
        IndexBuildError: no shard is done, or a shard's IVF file is missing.
    """
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    folder = Path(folder)
    shards = done_shards(folder)
    if not shards:
        raise IndexBuildError(f"no finished shard in {folder}; run add_shard first")
    plan = json.loads((folder / "plan.json").read_text())
    order = sorted(shards)
    paths = [folder / shards[s].index_file for s in order]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise IndexBuildError(f"{missing[0]} is missing; rerun add_shard for it")
    key = uuid.uuid4().hex[:12]
    lists, populated = f"lists-{key}.ivfdata", f"populated-{key}.index"
    index = faiss.read_index(str(folder / TRAINED))
    merge_ondisk(index, [str(p) for p in paths], str(folder / lists))
    _write_index(index, folder / populated)
    ntotal = int(index.ntotal)
    del index
    old = read_manifest(folder) if (folder / MANIFEST).exists() else None
    manifest = {
        "format": FORMAT,
        "plan": plan,
        "index_file": populated,
        "lists_file": lists,
        "ntotal": ntotal,
        "shards": [shards[s].to_dict() for s in order],
        "faiss_version": faiss.__version__,
    }
    if sum(shards[s].rows for s in order) != ntotal:
        raise IndexBuildError(
            f"merged {ntotal} entries but the shards hold {sum(i.rows for i in shards.values())}"
        )
    write_json(folder / MANIFEST, manifest)
    if old and old["index_file"] != populated:
        (folder / old["index_file"]).unlink(missing_ok=True)
        (folder / old["lists_file"]).unlink(missing_ok=True)
    if not keep_shard_indexes:
        for p in paths:
            p.unlink(missing_ok=True)
    return folder / MANIFEST


# -- all four steps, locally --------------------------------------------------------------------

ShardSource = Callable[[], Iterable[Block]]
"""A picklable function returning one shard's blocks (module-level function or partial)."""


def _add_shard_job(folder: str, shard: int, source: ShardSource, threads: int) -> dict[str, Any]:
    return add_shard(folder, shard, source(), threads=threads).to_dict()


def _add_with_ray(
    folder: Path,
    todo: list[int],
    shards: Sequence[ShardSource],
    threads: int,
    options: RayOptions,
    say: Callable[[str], None],
) -> None:
    """Add shards ``todo`` as Ray tasks, reporting each as it finishes (any order)."""
    from embedder.ray_runner import ray_session

    with ray_session(options) as ray:
        job = ray.remote(num_cpus=threads, max_retries=2)(_add_shard_job)
        pending = [job.remote(str(folder), i, shards[i], threads) for i in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            d = ray.get(done[0])
            say(f"shard {d['shard']}: {d['rows']:,} rows in {d['seconds']:.1f} s (Ray task)")


def build_ondisk(
    folder: str | Path,
    shards: Sequence[ShardSource],
    sample: np.ndarray,
    *,
    n: int,
    plan: OnDiskPlan | None = None,
    workers: int = 1,
    threads: int | None = None,
    gpu: bool = False,
    vectors: VectorSource | None = None,
    log: Callable[[str], None] | None = None,
    ray: RayOptions | None = None,
) -> OnDiskIndex:
    """Train, add every shard (``workers`` processes), merge and open (see module doc).

    Shards already done (a previous run was killed) are skipped, so a rerun resumes; when
    ``ondisk.json`` already lists every shard (killed after the merge), nothing is redone.

    Args:
        folder: the index folder.
        shards: one block source per shard; shard ``i`` gets number ``i``.
        sample: the training sample (a uniform sample of all vectors).
        n: total vectors (chooses ``nlist``; ignored when ``plan`` is given).
        plan: the structure; default :func:`index.ondisk_plan.plan_ondisk`.
        workers: processes adding shards at once (spawned, so FAISS's OpenMP is fresh).
        threads: OpenMP threads per worker (default: cores / workers).
        gpu: train k-means on the GPU.
        vectors: re-ranking source when the plan stores no vectors (see :func:`open_ondisk`).
        log: progress messages.
        ray: add the shards as Ray tasks (one CPU-bound task per shard, ``threads`` CPUs each)
            on the cluster these options name, instead of local processes; every task must
            see ``folder`` (a shared file system on a multi-machine cluster).
    """
    folder = Path(folder)
    plan = plan or plan_ondisk(n, int(sample.shape[1]))
    say = log or (lambda _m: None)
    if not (folder / TRAINED).exists() or json.loads((folder / "plan.json").read_text()) != plan.to_dict():
        t = time.perf_counter()
        train_ondisk(folder, sample, plan, gpu=gpu)
        say(f"trained {plan.factory} on {len(sample):,} vectors in {time.perf_counter() - t:.1f} s")
        for p in folder.glob("shard-*.json"):  # shards of another plan are stale
            p.unlink()
    done = done_shards(folder)
    todo = [i for i in range(len(shards)) if i not in done]
    per = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    if ray is not None:
        _add_with_ray(folder, todo, shards, threads or 1, ray, say)
    elif workers <= 1:
        for i in todo:
            info = add_shard(folder, i, shards[i](), threads=per)
            say(f"shard {i}: {info.rows:,} rows in {info.seconds:.1f} s")
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futs = [pool.submit(_add_shard_job, str(folder), i, shards[i], per) for i in todo]
            for f in futs:
                d = f.result()
                say(f"shard {d['shard']}: {d['rows']:,} rows in {d['seconds']:.1f} s")
    if _merged(folder, plan, done_shards(folder)):  # killed after the merge: its shard IVFs are gone
        say(f"the {len(shards)} shards are already merged")
        return open_ondisk(folder, vectors)
    t = time.perf_counter()
    merge_shards(folder)
    say(f"merged {len(shards)} shards in {time.perf_counter() - t:.1f} s")
    return open_ondisk(folder, vectors)


def _merged(folder: Path, plan: OnDiskPlan, done: dict[int, ShardInfo]) -> bool:
    """Whether ``ondisk.json`` already lists exactly the ``done`` shards of ``plan``."""
    if not (folder / MANIFEST).exists():
        return False
    m = read_manifest(folder)
    return bool(m["plan"] == plan.to_dict() and m["shards"] == [done[s].to_dict() for s in sorted(done)])

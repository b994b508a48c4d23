"""The index front door: choose a FAISS structure, build it from blocks, tune it.

One idea per module: :mod:`index.plan` chooses the factory string from data size and memory
(:mod:`index.memory` measures the memory, cgroup limits included), :mod:`index.faiss_build`
makes, trains and fills the index from a block stream, and :mod:`index.calibrate` tunes
search parameters for a target recall; :mod:`index.ondisk_plan` plans the out-of-core index
(built by :mod:`index.ondisk`). This module re-exports them so that
``from index import factory as fac`` reaches everything.
"""

from index.calibrate import calibrate, recall_at_k
from index.faiss_build import (
    BuildResult,
    build_from_blocks,
    gpu_available,
    gpu_count,
    is_exact,
    make_index,
    new_index,
    normalise_factory,
    parquet_blocks,
    sample_blocks,
    search_params,
    stores_exact_vectors,
    supports_remove,
    to_gpu,
    train_size_for,
)
from index.memory import available_memory
from index.ondisk_plan import OnDiskPlan, plan_ondisk
from index.plan import (
    IndexPlan,
    bytes_per_vector,
    check_factory,
    choose_factory,
    compressed_factory,
    compressed_ladder,
    plan_index,
)
from index.plan_rules import (
    EXACT_MAX,
    FEW_ITER,
    FEW_ITER_MIN_NLIST,
    GRAPH_M,
    GRAPH_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_QUANTIZER_MIN_NLIST,
    MAX_TRAIN,
    MEMORY_FRACTION,
    REFINE_K_FACTOR,
    TRAIN_PER_LIST,
    TRAIN_SAMPLE,
    Block,
    BlockSource,
    IndexBuildError,
    nlist_for,
    nprobe_for,
)

__all__ = [
    "Block",
    "BlockSource",
    "BuildResult",
    "EXACT_MAX",
    "FEW_ITER",
    "FEW_ITER_MIN_NLIST",
    "GRAPH_M",
    "GRAPH_MAX",
    "HNSW_EF_CONSTRUCTION",
    "HNSW_EF_SEARCH",
    "HNSW_QUANTIZER_MIN_NLIST",
    "IndexBuildError",
    "IndexPlan",
    "MAX_TRAIN",
    "MEMORY_FRACTION",
    "OnDiskPlan",
    "REFINE_K_FACTOR",
    "TRAIN_PER_LIST",
    "TRAIN_SAMPLE",
    "available_memory",
    "build_from_blocks",
    "bytes_per_vector",
    "calibrate",
    "check_factory",
    "choose_factory",
    "compressed_factory",
    "compressed_ladder",
    "gpu_available",
    "gpu_count",
    "is_exact",
    "make_index",
    "new_index",
    "nlist_for",
    "normalise_factory",
    "nprobe_for",
    "parquet_blocks",
    "plan_index",
    "plan_ondisk",
    "recall_at_k",
    "sample_blocks",
    "search_params",
    "stores_exact_vectors",
    "supports_remove",
    "to_gpu",
    "train_size_for",
]

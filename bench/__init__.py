"""earthvec benchmarks (run from the repository root: ``python -m bench.run [--quick]``).

Not part of the installed package: ``bench/`` sits beside ``embedder``/``index``/``app``.

OpenMP threads (FAISS) sleep instead of spinning while they wait (``OMP_WAIT_POLICY``), set
before FAISS loads: on a machine shared with other jobs, spinning threads made FAISS 3x slower
than one thread, which would skew every comparison with libraries that use their own pools.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

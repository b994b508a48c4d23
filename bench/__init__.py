"""earthvec benchmarks (run from the repository root: ``python -m bench.run [--quick]``).

Not part of the installed package: ``bench/`` sits beside ``embedder``/``index``/``app``.
"""

"""earthvec index layer: FAISS search, kNN labelling and DuckDB SQL (no torch)."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

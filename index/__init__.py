"""earthvec index layer: FAISS search, kNN labelling and DuckDB SQL (no torch)."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
# FAISS logs every CPU-feature probe at INFO; keep the CLI output readable
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

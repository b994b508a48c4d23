"""earthvec embedder layer: chips, sensors, models and the Parquet contract.

Importing this package does not import torch; model modules import it when used.
"""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

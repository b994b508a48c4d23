"""Fixtures for the multimodal embedder tests: real chips from data/ and a small model."""

from __future__ import annotations

import numpy as np
import pytest

from embedder.batch import ChipBatch
from embedder.model import data as sources


@pytest.fixture(scope="session")
def eurosat_chips() -> sources.LabelledChips:
    """All EuroSAT-MS chips from data/eurosat_ms."""
    return sources.load_eurosat()


@pytest.fixture(scope="session")
def ben_crops() -> ChipBatch:
    """Eight aligned S2 + S1 crops of the real BigEarthNet pairs."""
    return sources.random_crops(sources.load_bigearthnet(), 8, np.random.default_rng(0))


@pytest.fixture(scope="session")
def random_ckpt():  # noqa: ANN201
    """The architecture with seeded random weights (no training needed)."""
    from embedder.model.checkpoint import random_checkpoint

    return random_checkpoint(0)


@pytest.fixture(scope="session")
def mm(random_ckpt):  # noqa: ANN001, ANN201
    """An embedder on the random checkpoint (CPU)."""
    from embedder.model.embedder import MultimodalEmbedder

    return MultimodalEmbedder(random_ckpt, device="cpu")

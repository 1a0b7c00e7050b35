"""Synthetic studies with a known ground truth (tests.fixtures.synthetic_study), built once."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # the CPU is shared; every model here is tiny


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``(study, truth)``: 3 transformer blocks (25 layers), 200 random configs, sweep rows."""
    from tests.fixtures.synthetic_study import make_synthetic_study

    return make_synthetic_study(tmp_path_factory.mktemp("synthetic"), n_random=200,
                                n_blocks=3, seed=1)


@pytest.fixture(scope="session")
def data(synthetic):
    from qua2.surrogates.data import load_study_data

    return load_study_data(synthetic[0])


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A one-block study (11 layers, 60 random configs) for the GNN."""
    from tests.fixtures.synthetic_study import make_synthetic_study

    return make_synthetic_study(tmp_path_factory.mktemp("tiny"), n_random=60, n_blocks=1,
                                sweep=False, seed=2)

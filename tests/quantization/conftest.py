"""Fixtures for the quantization tests: tiny randomised DetectNet_v2 models, images, QAT helpers."""

import numpy as np
import pytest
from qat_helpers import randomize

SIZE = 32  # input 32x32 -> 2x2 output grid: enough for graph and numeric checks, fast on CPU


@pytest.fixture(scope="session")
def make_detectnet():
    """Factory: randomised DetectNet_v2 (ResNet ``num_layers``, 2 classes, 32x32 RGB)."""
    from tao_qat.modeling.detectnet import build_detectnet_v2

    def make(num_layers=10, all_projections=False, seed=0, size=SIZE, **kwargs):
        model = build_detectnet_v2(
            num_layers, 2, (size, size, 3), all_projections=all_projections, **kwargs
        )
        return randomize(model, seed)

    return make


@pytest.fixture(scope="session")
def images():
    """Random images float32 [4, 32, 32, 3] in [0, 1]."""
    return np.random.default_rng(7).random((4, SIZE, SIZE, 3), dtype=np.float32)

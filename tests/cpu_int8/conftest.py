"""Fixtures for the CPU INT8 (ONNX Runtime) tests: tiny exported models, built once."""

import pytest
from cpu_int8_testing import exported_case


@pytest.fixture(scope="session")
def resnet10_case():
    """ResNet-10 64x64: 13 backbone convs, 4 projection shortcuts, 4 Adds, 2 heads."""
    return exported_case(10)


@pytest.fixture(scope="session")
def resnet18_case():
    """ResNet-18 64x64: 21 backbone convs (identity shortcuts on the b blocks), 8 Adds."""
    return exported_case(18)

"""Fixtures of the training tests: a tiny conv model and its fixed data (see tiny_keras.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_keras import tiny_data, tiny_model  # noqa: E402


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture
def data():
    return tiny_data()

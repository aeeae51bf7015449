"""Fixtures for the input-pipeline tests (helpers live in pipeline_testing.py)."""

import pytest
from pipeline_testing import write_dataset


@pytest.fixture
def dataset_root(tmp_path):
    """A 6-frame dataset (fold 0: 2 frames, fold 1: 4 frames) under tmp_path."""
    write_dataset(tmp_path)
    return tmp_path

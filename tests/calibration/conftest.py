"""Fixtures for the calibration tests: a tiny synthetic KITTI project (TFRecords + spec)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

from synthetic_workflow import make_synthetic_project  # noqa: E402


@pytest.fixture(scope="module")
def calibration_project(tmp_path_factory):
    """6 training and 3 validation 64x64 images, batch 4; returns the experiment spec path."""
    root = tmp_path_factory.mktemp("calibration_project")
    return make_synthetic_project(root, num_train=6, num_val=3, width=64, height=64, epochs=1)

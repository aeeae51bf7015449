"""Fixtures for the dataset_convert tests: a small synthetic KITTI set."""

import pytest

from tao_qat.data.synthetic import write_synthetic_kitti


@pytest.fixture
def synthetic_kitti(tmp_path):
    """10 synthetic 64x48 PNG frames (car/person) under tmp_path/data; returns (root, truth)."""
    root = tmp_path / "data"
    truth = write_synthetic_kitti(
        root, 10, image_size=(64, 48), box_size=(8, 16), objects_per_image=(1, 3), seed=3
    )
    return root, truth

"""Fixtures for workflow tests: a trained tiny synthetic project shared by the module."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_workflow import make_synthetic_project  # noqa: E402


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory):
    """A 64x64 two-class synthetic project trained 2 epochs with ResNet-10 (about 20 s).

    Returns (project folder, experiment spec path, results folder, TrainResult).
    """
    from tao_qat.training.trainer import TrainOptions, run_train

    root = tmp_path_factory.mktemp("project")
    spec = make_synthetic_project(root, num_train=24, num_val=8, width=64, height=64, epochs=2)
    results = root / "results"
    result = run_train(TrainOptions(spec_path=str(spec), results_dir=str(results),
                                    echo=lambda _: None))
    return root, spec, results, result

"""Fixtures for the pruning tests: randomised tiny DetectNet_v2 models and the prune command."""

import numpy as np
import pytest


def randomize(model, seed, low=0.02):
    """Give ``model`` non-trivial weights in place; return it.

    Every conv filter is scaled by its own factor in [low, 1] (so normalised filter norms
    spread over [~low, 1] and a threshold like 0.5 removes about half), biases are random, and
    every BN gets random gamma / beta / moving mean / moving variance (so a removed channel
    would NOT vanish by accident).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        if kind == "Conv2D":
            kernel, bias = weights
            kernel = kernel * rng.uniform(low, 1.0, kernel.shape[-1]).astype(np.float32)
            bias = rng.normal(0.0, 0.1, bias.shape).astype(np.float32)
            layer.set_weights([kernel, bias])
        elif "BatchNormalization" in kind:
            size = weights[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, size).astype(np.float32),  # gamma
                    rng.normal(0.0, 0.2, size).astype(np.float32),  # beta
                    rng.normal(0.0, 0.2, size).astype(np.float32),  # moving mean
                    rng.uniform(0.5, 2.0, size).astype(np.float32),  # moving variance
                ]
            )
    return model


@pytest.fixture
def make_detectnet():
    """Factory: randomised DetectNet_v2 (ResNet ``num_layers``, 2 classes, 64x64 RGB)."""
    from tao_qat.modeling.detectnet import build_detectnet_v2

    def make(num_layers=10, all_projections=False, seed=0, size=64, **kwargs):
        model = build_detectnet_v2(
            num_layers, 2, (size, size, 3), all_projections=all_projections, **kwargs
        )
        return randomize(model, seed)

    return make


@pytest.fixture
def images():
    """Random images [2, 64, 64, 3] in [0, 1]."""
    return np.random.default_rng(7).random((2, 64, 64, 3), dtype=np.float32)


@pytest.fixture
def prune_command(monkeypatch):
    """Make sure ``qat prune`` is registered (until the lead adds it to cli.main.COMMANDS)."""
    from tao_qat.cli import main

    monkeypatch.setitem(main.COMMANDS, "prune", "tao_qat.cli.prune:prune")


@pytest.fixture(scope="module")
def resnet10_file(tmp_path_factory):
    """A randomised ResNet-10 DetectNet_v2 (2 classes, 64x64) saved as .hdf5."""
    from tao_qat.modeling.detectnet import build_detectnet_v2
    from tao_qat.modeling.model_io import save_model

    model = randomize(build_detectnet_v2(10, 2, (64, 64, 3)), seed=11)
    return save_model(model, tmp_path_factory.mktemp("prune_cli") / "model.hdf5")

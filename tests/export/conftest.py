"""Fixtures for the ONNX export tests: exported tiny DetectNet_v2 models, shared per session
(each tf2onnx conversion takes a few seconds)."""

import pytest
from onnx_export_testing import randomized_model

from tao_qat.export.onnx_export import export_onnx

# (num_layers, all_projections) -> input shape. ResNet-10 has a projection shortcut in every
# repeat whatever all_projections says; ResNet-18 differs (identity vs 1x1 conv on repeat b).
CASES = {
    (10, False): (64, 96, 3),
    (18, False): (64, 64, 3),
    (18, True): (64, 64, 3),
}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Factory: (num_layers, all_projections) -> (keras model, OnnxExport), cached."""
    cache = {}

    def get(num_layers=10, all_projections=False):
        key = (num_layers, all_projections)
        if key not in cache:
            model = randomized_model(num_layers, CASES[key], all_projections=all_projections)
            folder = tmp_path_factory.mktemp(f"resnet{num_layers}_{int(all_projections)}")
            cache[key] = (model, export_onnx(model, folder / "model.onnx"))
        return cache[key]

    return get


@pytest.fixture(scope="session")
def resnet10(exported):
    """ResNet-10, 2 classes, 64x96 input: (keras model, OnnxExport)."""
    return exported(10, False)


@pytest.fixture(scope="session")
def resnet10_static2(resnet10, tmp_path_factory):
    """The ResNet-10 exported with static_batch_size=2: OnnxExport."""
    keras_model, _ = resnet10
    path = tmp_path_factory.mktemp("resnet10_static") / "b2.onnx"
    return export_onnx(keras_model, path, static_batch_size=2)

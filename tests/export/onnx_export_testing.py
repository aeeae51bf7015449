"""Helpers for the ONNX export tests: tiny randomised DetectNet_v2 models, real images, max
calibration of a TAO-like scales dict (input, ReLUs, Adds, BNs feeding an Add; conv kernels)."""

from pathlib import Path

import numpy as np
from PIL import Image

from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import build_detectnet_v2

IMAGE_DIR = Path(__file__).resolve().parents[1] / "data" / "people_vehicles" / "image_2"
HEADS = ("output_cov", "output_bbox")


def randomized_model(num_layers, input_shape, *, all_projections=False, num_classes=2, seed=0):
    """DetectNet_v2 with non-zero conv biases and non-trivial BN statistics (so the ONNX Conv
    nodes carry a bias input and BN does something a wrong mapping would show)."""
    model = build_detectnet_v2(
        num_layers, num_classes, input_shape, all_projections=all_projections
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape).astype(np.float32),
                    rng.normal(0, 0.1, shape).astype(np.float32),
                    rng.normal(0, 0.1, shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, shape).astype(np.float32),
                ]
            )
    return model


def real_images(height, width):
    """The 4 real photos of tests/data/people_vehicles, resized: float32 [4, H, W, 3] in [0, 1]."""
    paths = sorted(IMAGE_DIR.glob("*.jpg"))
    assert len(paths) == 4, paths
    return np.stack(
        [
            np.asarray(Image.open(p).convert("RGB").resize((width, height)), np.float32) / 255.0
            for p in paths
        ]
    )


def keras_outputs(model, layer_names, images):
    """{layer: numpy output [B, H, W, C]} of the given layers on ``images`` (inference mode)."""
    probe = keras.Model(model.input, [model.get_layer(name).output for name in layer_names])
    outputs = probe(images, training=False)
    if len(layer_names) == 1:
        outputs = [outputs]
    return {name: np.asarray(out) for name, out in zip(layer_names, outputs, strict=True)}


def activation_keys(model):
    """TAO-QAT-like activation keys: input, ReLUs, Adds and BNs feeding an Add; no heads."""
    keys = [model.input_names[0]]
    for layer in model.layers:
        kind = type(layer).__name__
        consumers = {type(node.outbound_layer).__name__ for node in layer.outbound_nodes}
        if layer.name in HEADS:
            continue
        if kind in ("Activation", "ReLU", "Add") or (
            "BatchNormalization" in kind and "Add" in consumers
        ):
            keys.append(layer.name)
    return keys


def max_scales(model, images):
    """(activation_amax {layer: max |x|}, weight_amax {conv: max |w| per output channel})."""
    keys = activation_keys(model)
    outputs = keras_outputs(model, keys, images)
    activations = {key: float(np.abs(outputs[key]).max()) for key in keys}
    weights = {
        layer.name: np.abs(layer.get_weights()[0]).max(axis=(0, 1, 2))
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.name not in HEADS
    }
    return activations, weights


def nhwc(array):
    """NCHW -> NHWC."""
    return np.transpose(array, (0, 2, 3, 1))


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|."""
    return float(np.abs(actual - expected).max() / np.abs(expected).max())

"""Helpers shared by the quantization tests (hand-written expectations, QAT model walking)."""

import string

import numpy as np


def randomize(model, seed):
    """Give ``model`` non-trivial weights in place (random biases and BN statistics); return it."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        if kind == "Conv2D":
            kernel, bias = weights
            kernel = kernel * rng.uniform(0.3, 1.0, kernel.shape[-1]).astype(np.float32)
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype(np.float32)])
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


def expected_placement(repeats, all_projections):
    """Hand-written TensorRT placement for a TAO ResNet DetectNet_v2 (docs/quantization.md).

    Returns (activation layers, weight layers): the network input, the conv1 ReLU, every
    ReLU of every repeat, the projection shortcut BN of every projected repeat (the other Add
    input); not the last ReLU (it only feeds the float heads). Weights: every backbone conv.
    """
    activations, weights = ["input_1", "activation_1"], ["conv1"]
    for block, count in enumerate(repeats, start=1):
        for letter in string.ascii_lowercase[:count]:
            prefix = f"block_{block}{letter}_"
            projected = letter == "a" or all_projections
            activations.append(prefix + "relu_1")
            weights += [prefix + "conv_1", prefix + "conv_2"]
            if projected:
                activations.append(prefix + "bn_shortcut")
                weights.append(prefix + "conv_shortcut")
            activations.append(prefix + "relu")
    activations.pop()  # block_4<last>_relu feeds only output_cov / output_bbox
    return activations, weights


def walk_qat_model(model):
    """Read the quantization of a QAT model layer by layer.

    Returns:
        dict with "activations": {float layer name whose output is quantized: class of the
        quantized float layer ("InputLayer" for the input quantizer)}, "weights": {float conv
        name: quantizer reduce_axes}, "plain": names of the unwrapped layers.
    """
    from tao_qat.quantization.layers import QuantizeLayer, TrtQuantizeWrapper

    found = {"activations": {}, "weights": {}, "plain": []}
    for layer in model.layers:
        if isinstance(layer, QuantizeLayer):
            source = layer.inbound_nodes[0].inbound_layers  # a single layer: one input
            found["activations"][source.name] = type(source).__name__
        elif isinstance(layer, TrtQuantizeWrapper):
            inner = layer.layer
            if layer.output_quantizer_variables() is not None:
                found["activations"][inner.name] = type(inner).__name__
            for _, quantizer in layer.weight_quantizers():
                found["weights"][inner.name] = quantizer.reduce_axes
        else:
            found["plain"].append(layer.name)
    return found

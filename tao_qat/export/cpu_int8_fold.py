"""Fold BatchNormalization into the preceding Conv of an ONNX graph, in numpy (int8_calibration.md
§6: ONNX Runtime fuses Conv+BN only for float graphs, so a quantized CPU graph folds it first).

For a Conv (kernel W float [C_out, C_in/g, kh, kw], bias b [C_out] or none) read only by a
BatchNormalization (scale g, offset B, mean m, variance v, epsilon e), with f = g / sqrt(v + e):

    W' = W * f[:, None, None, None]        b' = (b - m) * f + B

The folded Conv writes the BN's output tensor (``block_1a_bn_1/FusedBatchNormV3:0``), so scales
keyed by the BN layer or tensor still name the same values; the BN node goes away. Per-channel
weight amax values follow the fold exactly: max |W'_c| = |f_c| max |W_c|. TF-free.
"""

from dataclasses import dataclass

import numpy as np

from tao_qat.export.onnx_names import layer_of

BN_DEFAULT_EPSILON = 1e-5


@dataclass(frozen=True)
class FoldedConv:
    """One Conv of a folded graph.

    Attributes:
        layer: Keras conv layer name (``block_1a_conv_1``), from the node name.
        node: ONNX Conv node name.
        kernel: initializer name of the (folded) float kernel, OIHW.
        bias: initializer name of the (folded) float bias [C_out], or None.
        factor: float64 [C_out] multiplier f applied to the kernel (ones when no BN was folded).
        batchnorm: name of the folded BatchNormalization node, or None.
    """

    layer: str
    node: str
    kernel: str
    bias: str | None
    factor: np.ndarray
    batchnorm: str | None = None


def _attribute(node, name, default):
    for attr in node.attribute:
        if attr.name == name:
            import onnx

            return onnx.helper.get_attribute_value(attr)
    return default


def _consumers(graph):
    users = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def fold_batchnorm(onnx_model):
    """Return (folded copy of ``onnx_model``, {conv node name: FoldedConv}).

    Every Conv with an initializer kernel is listed (with factor 1 when no BN follows it).
    A BN is folded when it reads a Conv output that nothing else reads (and that is not a graph
    output) and all its parameters are initializers. New initializers are named
    ``<conv layer>/kernel_folded`` and ``<conv layer>/bias_folded``; the input is not modified.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    graph = model.graph
    arrays = {init.name: init for init in graph.initializer}
    users = _consumers(graph)
    outputs = {out.name for out in graph.output}
    convs, dropped, new_inits = {}, set(), []
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in arrays:
            continue
        layer = layer_of(node.name) or node.name
        c_out = arrays[node.input[1]].dims[0]
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        folded = FoldedConv(layer, node.name, node.input[1], bias, np.ones(c_out))
        readers = users.get(node.output[0], [])
        bn = readers[0] if len(readers) == 1 else None
        foldable = (
            bn is not None
            and bn.op_type == "BatchNormalization"
            and node.output[0] not in outputs
            and all(name in arrays for name in bn.input[1:5])
            and (bias is None or bias in arrays)
        )
        if foldable:
            gamma, beta, mean, var = (
                numpy_helper.to_array(arrays[name]).astype(np.float64) for name in bn.input[1:5]
            )
            factor = gamma / np.sqrt(var + _attribute(bn, "epsilon", BN_DEFAULT_EPSILON))
            kernel = numpy_helper.to_array(arrays[node.input[1]]).astype(np.float64)
            old_bias = (
                np.zeros(c_out) if bias is None else numpy_helper.to_array(arrays[bias])
            ).astype(np.float64)
            kernel_name, bias_name = f"{layer}/kernel_folded", f"{layer}/bias_folded"
            new_inits += [
                numpy_helper.from_array(
                    (kernel * factor[:, None, None, None]).astype(np.float32), kernel_name
                ),
                numpy_helper.from_array(
                    ((old_bias - mean) * factor + beta).astype(np.float32), bias_name
                ),
            ]
            node.input[:] = [node.input[0], kernel_name, bias_name]
            node.output[0] = bn.output[0]
            dropped.add(bn.name)
            folded = FoldedConv(layer, node.name, kernel_name, bias_name, factor, bn.name)
        convs[node.name] = folded
    kept = [node for node in graph.node if node.name not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    remove_unused_initializers(graph)
    return model, convs


def remove_unused_initializers(graph):
    """Drop initializers (and their graph-input entries) that no node reads."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = {init.name for init in graph.initializer} - used
    keep = [init for init in graph.initializer if init.name not in unused]
    inputs = [inp for inp in graph.input if inp.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.input[:]
    graph.input.extend(inputs)

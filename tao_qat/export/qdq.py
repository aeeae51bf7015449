"""Explicit INT8 quantization: Q/DQ node pairs from the scales dict (int8_calibration.md §0, §4).

TensorRT >= 10 (strongly typed in 11) and ONNX Runtime take an INT8 model as a float graph
with QuantizeLinear -> DequantizeLinear pairs: symmetric, int8 zero point 0, scale amax / 127,
round half to even, clamp to [-128, 127].

- Activations: one per-tensor pair on each tensor of ``activation_amax`` (keyed by the Keras
  layer whose output is quantized, ``"input_1"``, ``"block_1a_relu_1"``, ``"add_1"``; see
  design.md "The scales dict"); every consumer of the tensor reads the DQ output, so the pair
  sits on the inputs of the next convs / Adds, as TensorRT's placement rules want.
- Weights: a pair on each conv kernel initializer of ``weight_amax`` (keyed by conv layer),
  per output channel (1-D scale of length C_out, ``axis=0`` of the OIHW kernel, opset >= 13)
  or per tensor (scalar scale). Biases stay float.
- The output heads (layers whose output is a graph output: ``output_cov``, ``output_bbox``)
  never get Q/DQ on their outputs or kernels (TAO QAT policy); such keys raise UsageError.
Which tensors get scales is the placement policy's job (``quantization.policy``), not this
module's. TF-free: numpy and onnx only.
"""

import numpy as np

from tao_qat.common.errors import UsageError
from tao_qat.export.onnx_names import as_name_map, initializer_array

INT8_MAX = 127
PER_CHANNEL_MIN_OPSET = 13
QDQ_MIN_OPSET = 10


def scale_from_amax(amax):
    """float32 scale(s) amax / 127 (computed in float64, rounded once to float32)."""
    return (np.asarray(amax, np.float64) / INT8_MAX).astype(np.float32)


def _opset(onnx_model):
    return next(op.version for op in onnx_model.opset_import if op.domain in ("", "ai.onnx"))


def _tensor_base(tensor):
    """``block_1a_relu_1/Relu:0`` -> ``block_1a_relu_1/Relu`` (prefix of the Q/DQ names)."""
    head, sep, tail = tensor.rpartition(":")
    return head if sep and tail.isdigit() else tensor


def _activation_amax(key, value):
    amax = np.asarray(value, np.float64)
    if amax.size != 1 or not np.isfinite(amax).all() or float(amax.reshape(())) <= 0:
        raise UsageError(
            f"activation scale {key!r}: amax must be one finite number > 0, got {value}"
        )
    return float(amax.reshape(()))


def _weight_amax(key, value, kernel, per_channel):
    """amax float64, scalar or [C_out]; zero channels of an all-zero filter get 1.0."""
    amax = np.asarray(value, np.float64)
    c_out = kernel.shape[0]
    if amax.size == 1:
        amax = amax.reshape(())
    elif amax.shape != (c_out,):
        raise UsageError(
            f"weight scale {key!r}: amax shape {amax.shape} does not match the {c_out} output "
            "channels of the kernel"
        )
    elif not per_channel:
        amax = np.asarray(amax.max())
    if not np.isfinite(amax).all():
        raise UsageError(f"weight scale {key!r}: amax must be finite, got {value}")
    channel_max = np.abs(kernel).reshape(c_out, -1).max(axis=1)
    all_zero = channel_max == 0 if amax.ndim else channel_max.max() == 0
    amax = np.where((amax <= 0) & all_zero, 1.0, amax)  # zeros quantize to 0 at any scale
    if np.any(amax <= 0):
        raise UsageError(f"weight scale {key!r}: amax must be > 0 for non-zero filters")
    return amax


def _qdq_pair(onnx, base, source, scale, axis=None):
    """(initializers, [Q, DQ] nodes, DQ output name) quantizing ``source`` with ``scale``."""
    from onnx import numpy_helper

    scale = np.asarray(scale, np.float32)
    zero_point = np.zeros(scale.shape, np.int8)
    inits = [
        numpy_helper.from_array(scale, f"{base}_scale"),
        numpy_helper.from_array(zero_point, f"{base}_zero_point"),
    ]
    extra = {} if axis is None else {"axis": axis}
    quantized, dequantized = f"{base}_QuantizeLinear:0", f"{base}_DequantizeLinear:0"
    nodes = [
        onnx.helper.make_node(
            "QuantizeLinear",
            [source, f"{base}_scale", f"{base}_zero_point"],
            [quantized],
            name=f"{base}_QuantizeLinear",
            **extra,
        ),
        onnx.helper.make_node(
            "DequantizeLinear",
            [quantized, f"{base}_scale", f"{base}_zero_point"],
            [dequantized],
            name=f"{base}_DequantizeLinear",
            **extra,
        ),
    ]
    return inits, nodes, dequantized


def _resolve_activation(names, key, produced, graph_outputs):
    tensor = names.layer_tensors.get(key, key if key in produced else None)
    if tensor is None:
        raise UsageError(
            f"activation scale {key!r}: not a layer (or tensor) of the ONNX graph "
            f"({len(names.layer_tensors)} layers are mapped)"
        )
    if key in names.head_layers or tensor in graph_outputs:
        raise UsageError(
            f"activation scale {key!r}: the output heads stay float (no Q/DQ on {tensor})"
        )
    return tensor


def _check_weight_key(names, key):
    if key in names.head_layers:
        raise UsageError(f"weight scale {key!r}: the output heads' kernels stay float")
    if key not in names.conv_kernels:
        raise UsageError(
            f"weight scale {key!r}: not a conv layer with a kernel initializer in the ONNX graph"
        )


def insert_qdq(onnx_model, activation_amax, weight_amax, name_map=None, *, per_channel=True):
    """Return a copy of ``onnx_model`` with explicit INT8 Q/DQ pairs (TensorRT style).

    Args:
        onnx_model: float onnx.ModelProto from ``export_onnx`` (NCHW, OIHW kernels).
        activation_amax: {keras layer name (or ONNX tensor name): amax float > 0}.
        weight_amax: {conv layer name: amax float32 [C_out] or scalar}, max |w| of the ONNX
            kernel (the float Keras kernel; BN is not folded into it).
        name_map: OnnxNames / OnnxExport of the model; built from the graph when None.
        per_channel: per-output-channel weight scales (else the max over channels).

    Returns:
        onnx.ModelProto (the input is not modified), checked with ``onnx.checker``.
    """
    import onnx

    names = as_name_map(name_map if name_map is not None else onnx_model)
    opset = _opset(onnx_model)
    needed = PER_CHANNEL_MIN_OPSET if per_channel and weight_amax else QDQ_MIN_OPSET
    if opset < needed:
        raise UsageError(f"ONNX opset {opset}: Q/DQ export needs opset >= {needed} (use 13)")
    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    graph = model.graph
    produced = {out for node in graph.node for out in node.output} | {names.input_name}
    graph_outputs = {out.name for out in graph.output}
    already = {node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}

    inits, after, before, rewire = [], {}, {}, {}
    for key, value in activation_amax.items():
        tensor = _resolve_activation(names, key, produced, graph_outputs)
        if tensor in already or tensor in rewire:
            raise UsageError(f"activation scale {key!r}: {tensor} already has a Q/DQ pair")
        new_inits, nodes, dequantized = _qdq_pair(
            onnx, _tensor_base(tensor), tensor, scale_from_amax(_activation_amax(key, value))
        )
        inits += new_inits
        after[tensor] = nodes
        rewire[tensor] = dequantized
    conv_inputs = {}
    for key, value in weight_amax.items():
        _check_weight_key(names, key)
        kernel_name = names.conv_kernels[key]
        kernel = initializer_array(model, kernel_name)
        amax = _weight_amax(key, value, kernel, per_channel)
        axis = 0 if amax.ndim == 1 else None
        new_inits, nodes, dequantized = _qdq_pair(
            onnx, f"{key}/kernel", kernel_name, scale_from_amax(amax), axis
        )
        inits += new_inits
        before[names.conv_nodes[key]] = nodes
        conv_inputs[names.conv_nodes[key]] = (kernel_name, dequantized)

    new_nodes = list(after.get(names.input_name, []))
    for original in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        if node.name in conv_inputs:
            kernel_name, dequantized = conv_inputs[node.name]
            if node.input[1] != kernel_name:
                raise UsageError(f"conv {node.name}: its kernel already has a Q/DQ pair")
            new_nodes += before[node.name]
            node.input[1] = dequantized
        node.input[:] = [rewire.get(name, name) for name in node.input]
        new_nodes.append(node)
        for out in node.output:
            new_nodes += after.get(out, [])
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    onnx.checker.check_model(model)
    return model


def read_qdq_scales(onnx_model):
    """Scales of the Q/DQ pairs in a graph, keyed by the tensor each QuantizeLinear reads.

    Returns:
        (activations {tensor: float scale}, weights {initializer: float32 scale [C_out] or
        scalar}); a tensor is a weight when the QuantizeLinear reads an initializer.
    """
    initializers = {init.name for init in onnx_model.graph.initializer}
    activations, weights = {}, {}
    for node in onnx_model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        scale = initializer_array(onnx_model, node.input[1])
        if node.input[0] in initializers:
            weights[node.input[0]] = scale
        else:
            activations[node.input[0]] = float(scale)
    return activations, weights

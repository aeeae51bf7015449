"""INT8 ONNX for ONNX Runtime on CPUs from our QAT or PTQ scales (int8_calibration.md §0, §6).

TensorRT-style Q/DQ (``export.qdq``) quantizes conv inputs only, so ONNX Runtime finds no
``DQ -> Conv -> Q`` group and runs float convs on dequantized values (no faster than FP32).
This target writes the graph ONNX Runtime's QDQ optimizer turns into integer kernels:

- BatchNormalization is folded into its Conv first (``cpu_int8_fold``); weights are quantized
  from the folded kernel (symmetric int8, zero point 0, scale amax / 127 per output channel),
  biases to int32 with scale s_in * s_w, both stored as integers behind a DequantizeLinear.
- Every activation tensor read or written by a non-head Conv or by an Add gets one per-tensor
  QuantizeLinear -> DequantizeLinear pair, so each Conv and Add sits in a ``DQ -> op -> Q``
  group: QLinearConv, and QLinearAdd (a contrib op) keep activations 8-bit between layers.
- A ReLU right after a Conv or Add is removed and its output quantized with the lowest integer
  at 0 (uint8 zero point 0 / int8 zero point -128): quantizing clamps at 0, so the ReLU is
  exact inside the Q (ONNX Runtime's ReluQuantFusion does the same). Such tensors use 255
  levels over [0, amax]; signed tensors 127 per side over [-amax, amax] (TensorRT's grid).
- Activation amax values are ours (QAT peel-out or ``ptq.calibrate_onnx``), keyed by ONNX
  tensor or Keras layer name; a ReLU output falls back to the amax of the tensor it rectifies.
  QAT weight amax (max |w| of the unfolded kernel, per channel or per tensor) is scaled by the
  BN factor |f_c|, which reproduces QAT's weight grid exactly; without it max |W'_c| is used.
- The heads (``output_cov``, ``output_bbox``) stay float; they read the last DQ.
TF-free: numpy and onnx only.
"""

import logging
from dataclasses import dataclass

import numpy as np

from tao_qat.common.errors import UsageError
from tao_qat.export.cpu_int8_fold import fold_batchnorm, remove_unused_initializers
from tao_qat.export.onnx_names import QDQ_OPS, build_name_map

logger = logging.getLogger(__name__)

ACTIVATION_TYPES = ("uint8", "int8")
RECTIFIERS = ("Relu",)
MIN_OPSET = 13  # per-channel DequantizeLinear (axis)
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ActivationQuant:
    """Quantization of one activation tensor.

    Attributes:
        tensor: the tensor consumers read (after the rewrite they read its DQ output).
        source: the tensor the QuantizeLinear reads (the ReLU input when the ReLU is fused).
        amax: float range used; scale: float32; zero_point: int; dtype: "uint8" or "int8".
        fused_relu: name of the removed ReLU node, or None.
    """

    tensor: str
    source: str
    amax: float
    scale: float
    zero_point: int
    dtype: str
    fused_relu: str | None = None


@dataclass(frozen=True)
class _Planned:
    """A tensor the CPU INT8 graph quantizes, before its amax is known."""

    tensor: str
    source: str
    nonnegative: bool
    fused_relu: str | None = None


def activation_grid(amax, *, nonnegative, activation_type="uint8"):
    """(float32 scale, zero point) of a per-tensor activation.

    nonnegative: [0, amax] on 255 levels (uint8 zp 0, int8 zp -128); else [-amax, amax] on
    127 levels per side (uint8 zp 128, int8 zp 0), like TensorRT.
    """
    if nonnegative:
        return np.float32(amax / 255.0), 0 if activation_type == "uint8" else -128
    return np.float32(amax / 127.0), 128 if activation_type == "uint8" else 0


def cpu_int8_activation_tensors(float_onnx_model, float_layers=()):
    """Tensors of the float model that need an activation amax for the CPU INT8 graph.

    Returns a list (graph order) of ONNX tensor names: conv / Add inputs, conv outputs (the BN
    output when BN is folded) and ReLU outputs after a Conv or Add. Give this list to
    ``ptq.calibrate_onnx(..., tensor_names=...)`` to fill scales a QAT dict lacks.
    """
    plan, _, _ = _plan(float_onnx_model, float_layers)
    return [item.tensor for item in plan.values()]


def uncovered_activation_tensors(float_onnx_model, activation_amax, float_layers=()):
    """Tensors of ``cpu_int8_activation_tensors`` that ``activation_amax`` (tensor or layer
    keys) gives no amax for, e.g. the conv outputs a QAT dict leaves to TensorRT's fusions;
    calibrate these before ``quantize_for_onnxruntime``."""
    amax_by_tensor, _ = _lookup_amax(activation_amax, float_onnx_model)
    plan, _, _ = _plan(float_onnx_model, float_layers)
    return [
        tensor
        for tensor, item in plan.items()
        if tensor not in amax_by_tensor and not (item.fused_relu and item.source in amax_by_tensor)
    ]


def _lookup_amax(activation_amax, float_model):
    """{tensor name: float amax} from keys that are tensor names or Keras layer names."""
    names = build_name_map(float_model)
    produced = {out for node in float_model.graph.node for out in node.output}
    produced.add(names.input_name)
    by_tensor = {}
    for key, value in activation_amax.items():
        tensor = key if key in produced else names.layer_tensors.get(key)
        if tensor is None:
            raise UsageError(
                f"activation scale {key!r}: not a tensor or layer of the ONNX graph "
                f"({len(names.layer_tensors)} layers are mapped)"
            )
        amax = np.asarray(value, np.float64)
        if amax.size != 1 or not np.isfinite(amax).all():
            raise UsageError(f"activation scale {key!r}: amax must be one finite number")
        by_tensor[tensor] = float(amax.reshape(()))
    return by_tensor, names


def _plan(float_model, float_layers):
    """Fold BN and decide which tensors get Q/DQ.

    Returns ({tensor: _Planned} in graph order, folded model, {conv node: FoldedConv}).
    """
    names = build_name_map(float_model)
    folded, convs = fold_batchnorm(float_model)
    graph = folded.graph
    skip = set(names.head_layers) | set(float_layers)
    outputs = {out.name for out in graph.output}
    inits = {init.name for init in graph.initializer}
    users = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    producers = {out: node for node in graph.node for out in node.output}

    def nonnegative(tensor):
        node = producers.get(tensor)
        return (node is not None and node.op_type in RECTIFIERS) or tensor == names.input_name

    plan = {}

    def need(tensor, source=None, fused_relu=None):
        if tensor not in outputs and tensor not in plan:
            nonneg = fused_relu is not None or nonnegative(tensor)
            plan[tensor] = _Planned(tensor, source or tensor, nonneg, fused_relu)

    for node in graph.node:
        is_conv = node.name in convs and convs[node.name].layer not in skip
        is_add = node.op_type == "Add" and all(name not in inits for name in node.input)
        if not (is_conv or is_add) or node.output[0] in outputs:
            continue
        for name in node.input[:1] if is_conv else node.input:
            need(name)
        readers = users.get(node.output[0], [])
        relu = readers[0] if len(readers) == 1 and readers[0].op_type in RECTIFIERS else None
        if relu is not None and relu.output[0] not in outputs:
            need(relu.output[0], node.output[0], relu.name)
        else:
            need(node.output[0])
    order = {name: i for i, name in enumerate([names.input_name, *producers])}
    plan = dict(sorted(plan.items(), key=lambda item: order[item[0]]))
    return plan, folded, convs


def _activation_quants(
    plan, amax_by_tensor, activation_type, missing, input_nonnegative, input_name
):
    """Fill scales and zero points; drop (missing="float") or report tensors without amax."""
    done, absent = {}, []
    for tensor, item in plan.items():
        candidates = [tensor, item.source] if item.fused_relu else [tensor]
        amax = next((amax_by_tensor[c] for c in candidates if c in amax_by_tensor), None)
        if amax is None:
            absent.append(tensor)
            continue
        if amax <= 0:
            logger.warning("activation %s: amax %s <= 0 (dead tensor); using 1.0", tensor, amax)
            amax = 1.0
        nonnegative = item.nonnegative and (tensor != input_name or input_nonnegative)
        scale, zero_point = activation_grid(
            amax, nonnegative=nonnegative, activation_type=activation_type
        )
        done[tensor] = ActivationQuant(
            tensor,
            item.source,
            amax,
            float(scale),
            zero_point,
            activation_type,
            item.fused_relu,
        )
    if absent and missing == "error":
        raise UsageError(
            f"no activation amax for {len(absent)} tensors the CPU INT8 graph quantizes "
            f"({', '.join(absent[:4])}{', ...' if len(absent) > 4 else ''}); calibrate them "
            "(cpu_int8_activation_tensors + ptq.calibrate_onnx) or pass missing='float'"
        )
    return done


def _weight_amax(conv, kernel, weight_amax_by_conv, per_channel):
    """Folded per-channel (or per-tensor) amax float64: QAT amax * |f|, else max |W'|."""
    c_out = kernel.shape[0]
    if weight_amax_by_conv is not None and conv.layer in weight_amax_by_conv:
        given = np.asarray(weight_amax_by_conv[conv.layer], np.float64)
        if given.size not in (1, c_out) or not np.isfinite(given).all():
            raise UsageError(
                f"weight scale {conv.layer!r}: amax must be finite, one value or {c_out}"
            )
        amax = np.broadcast_to(given.reshape(-1), (c_out,)) * np.abs(conv.factor)
    else:
        amax = np.abs(kernel).reshape(c_out, -1).max(axis=1).astype(np.float64)
    if not per_channel:
        amax = np.full(c_out, amax.max())
    return np.where(amax > 0, amax, 1.0)  # an all-zero (pruned) filter: any scale is exact


def _quantized_weights(onnx, graph, conv, input_scale, weight_amax_by_conv, per_channel):
    """(initializers, DQ nodes, kernel DQ output, bias DQ output or None) of one conv."""
    from onnx import numpy_helper

    arrays = {init.name: init for init in graph.initializer}
    kernel = numpy_helper.to_array(arrays[conv.kernel]).astype(np.float64)
    c_out = kernel.shape[0]
    scale = (_weight_amax(conv, kernel, weight_amax_by_conv, per_channel) / 127.0).astype(
        np.float32
    )
    if not per_channel:
        scale = scale[:1].reshape(())
    shape = (-1, 1, 1, 1) if per_channel else ()
    q_kernel = np.clip(np.rint(kernel / np.reshape(scale, shape)), -127, 127).astype(np.int8)
    base = f"{conv.layer}/kernel"
    zero = np.zeros(scale.shape, np.int8)
    extra = {"axis": 0} if per_channel else {}
    inits = [
        numpy_helper.from_array(q_kernel, f"{base}_quantized"),
        numpy_helper.from_array(scale, f"{base}_scale"),
        numpy_helper.from_array(zero, f"{base}_zero_point"),
    ]
    nodes = [
        onnx.helper.make_node(
            "DequantizeLinear",
            [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_DequantizeLinear:0"],
            name=f"{base}_DequantizeLinear",
            **extra,
        )
    ]
    if conv.bias is None:
        return inits, nodes, nodes[0].output[0], None
    bias = numpy_helper.to_array(arrays[conv.bias]).astype(np.float64)
    bias_scale = (np.float32(input_scale) * np.broadcast_to(scale, (c_out,))).astype(np.float32)
    q_bias = np.clip(np.rint(bias / bias_scale), -INT32_MAX, INT32_MAX).astype(np.int32)
    base = f"{conv.layer}/bias"
    inits += [
        numpy_helper.from_array(q_bias, f"{base}_quantized"),
        numpy_helper.from_array(bias_scale, f"{base}_scale"),
        numpy_helper.from_array(np.zeros(c_out, np.int32), f"{base}_zero_point"),
    ]
    nodes.append(
        onnx.helper.make_node(
            "DequantizeLinear",
            [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_DequantizeLinear:0"],
            name=f"{base}_DequantizeLinear",
            axis=0,
        )
    )
    return inits, nodes, nodes[0].output[0], nodes[1].output[0]


def _activation_qdq(onnx, item):
    """(initializers, [Q, DQ]) for one ActivationQuant; DQ output ``<base>_DequantizeLinear:0``."""
    from onnx import numpy_helper

    head, sep, tail = item.tensor.rpartition(":")
    base = head if sep and tail.isdigit() else item.tensor
    dtype = np.uint8 if item.dtype == "uint8" else np.int8
    inits = [
        numpy_helper.from_array(np.asarray(item.scale, np.float32), f"{base}_scale"),
        numpy_helper.from_array(np.asarray(item.zero_point, dtype), f"{base}_zero_point"),
    ]
    params = [f"{base}_scale", f"{base}_zero_point"]
    nodes = [
        onnx.helper.make_node(
            "QuantizeLinear",
            [item.source, *params],
            [f"{base}_QuantizeLinear:0"],
            name=f"{base}_QuantizeLinear",
        ),
        onnx.helper.make_node(
            "DequantizeLinear",
            [f"{base}_QuantizeLinear:0", *params],
            [f"{base}_DequantizeLinear:0"],
            name=f"{base}_DequantizeLinear",
        ),
    ]
    return inits, nodes


def quantize_for_onnxruntime(
    float_onnx_model,
    activation_amax_by_tensor,
    weight_amax_by_conv=None,
    *,
    per_channel=True,
    activation_type="uint8",
    float_layers=(),
    input_nonnegative=True,
    missing="error",
):
    """Return an INT8 QDQ onnx.ModelProto that ONNX Runtime (CPU) runs with integer kernels.

    Args:
        float_onnx_model: float onnx.ModelProto from ``export_onnx`` (opset >= 13, BN kept).
        activation_amax_by_tensor: {ONNX tensor or Keras layer name: amax}, e.g. the output of
            ``ptq.calibrate_onnx`` or a QAT peel-out dict; extra keys are ignored.
        weight_amax_by_conv: {conv layer: amax [C_out] or scalar} of the unfolded kernels (QAT);
            None: max |w| of each folded kernel.
        per_channel: per-output-channel weight scales (else one per conv).
        activation_type: "uint8" (U8S8, zero point 128 for signed tensors) or "int8" (S8S8).
        float_layers: conv layers kept float besides the heads.
        input_nonnegative: the image input is >= 0 (RGB in [0, 1]): 255 levels on [0, amax].
        missing: "error" (UsageError naming tensors without amax) or "float" (leave them float;
            their ops then run as float kernels).

    Returns:
        onnx.ModelProto (the input is not modified), checked with ``onnx.checker``.
    """
    import onnx

    _check_arguments(float_onnx_model, activation_type, missing)
    amax_by_tensor, names = _lookup_amax(activation_amax_by_tensor, float_onnx_model)
    plan, model, convs = _plan(float_onnx_model, float_layers)
    quants = _activation_quants(
        plan, amax_by_tensor, activation_type, missing, input_nonnegative, names.input_name
    )
    known = {conv.layer for conv in convs.values()}
    unknown = sorted(set(weight_amax_by_conv or ()) - known)
    if unknown:
        raise UsageError(f"weight scale {unknown[0]!r}: not a conv layer of the ONNX graph")
    skip = set(names.head_layers) | set(float_layers)
    integer_convs = {
        name: conv
        for name, conv in convs.items()
        if conv.layer not in skip and _conv_input(model, name) in quants
    }
    _rewrite(onnx, model, quants, integer_convs, names.input_name, weight_amax_by_conv, per_channel)
    model.doc_string = (
        f"{float_onnx_model.doc_string}; INT8 QDQ for ONNX Runtime CPU "
        f"({activation_type} activations, int8 weights, BN folded)"
    )
    onnx.checker.check_model(model)
    logger.info(
        "CPU INT8: %d activation tensors quantized, %d ReLUs fused, %d convs with int8 weights",
        len(quants),
        sum(1 for q in quants.values() if q.fused_relu),
        len(integer_convs),
    )
    return model


def _check_arguments(float_onnx_model, activation_type, missing):
    if activation_type not in ACTIVATION_TYPES:
        raise UsageError(f"activation_type {activation_type!r}: one of {ACTIVATION_TYPES}")
    if missing not in ("error", "float"):
        raise UsageError(f"missing {missing!r}: 'error' or 'float'")
    opset = next(op.version for op in float_onnx_model.opset_import if op.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise UsageError(f"ONNX opset {opset}: the CPU INT8 export needs opset >= {MIN_OPSET}")
    if any(n.op_type in QDQ_OPS for n in float_onnx_model.graph.node):
        raise UsageError("the model already has Q/DQ nodes: give the float export")


def _conv_input(model, node_name):
    return next(node.input[0] for node in model.graph.node if node.name == node_name)


def _rewrite(onnx, model, quants, integer_convs, input_name, weight_amax_by_conv, per_channel):
    """Insert the activation Q/DQ pairs and integer weights into ``model`` (in place)."""
    graph = model.graph
    removed = {q.fused_relu for q in quants.values() if q.fused_relu}
    after, inits, rewire = {}, [], {}
    for item in quants.values():
        new_inits, nodes = _activation_qdq(onnx, item)
        inits += new_inits
        after.setdefault(item.source, []).extend(nodes)
        rewire[item.tensor] = nodes[1].output[0]
    new_nodes = list(after.get(input_name, []))
    for original in graph.node:
        if original.name in removed:
            continue
        node = onnx.NodeProto()
        node.CopyFrom(original)
        conv = integer_convs.get(node.name)
        if conv is not None:
            w_inits, w_nodes, kernel, bias = _quantized_weights(
                onnx, graph, conv, quants[node.input[0]].scale, weight_amax_by_conv, per_channel
            )
            inits += w_inits
            new_nodes += w_nodes
            node.input[1] = kernel
            if bias is not None:
                node.input[2] = bias
        node.input[:] = [rewire.get(name, name) for name in node.input]
        new_nodes.append(node)
        for out in node.output:
            new_nodes += after.get(out, [])
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    remove_unused_initializers(graph)

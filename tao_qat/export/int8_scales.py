"""INT8 scales of an exported model, from QAT ranges or PTQ calibration, keyed for each output
(docs/design.md "The scales dict"; tao_detectnet_v2.md §6; int8_calibration.md §2, §4).

One ``Int8Scales`` feeds all three INT8 outputs of ``qat export``:

- ``tensor_amax`` {ONNX tensor: amax}: the TensorRT calibration cache and ``--cal_json_file``;
  every key is a tensor of the exported graph (``check_tensor_keys``).
  QAT: the quantized activations only (what TAO writes). PTQ: every float tensor of the graph,
  heads included (what a TensorRT calibrator writes; DLA wants every tensor covered).
- ``activation_amax`` {Keras layer: amax > 0} and ``weight_amax`` {conv layer: amax [C_out] or
  float}: the Q/DQ ONNX (``export.qdq.insert_qdq``). QAT: the learned ranges. PTQ: the placement
  policy (``quantization.policy``) picks the layers, calibration gives the activation ranges,
  max |w| per output channel of the ONNX kernel gives the weight ranges.
- ``cpu_tensor_amax`` {ONNX tensor: amax} (``--target onnxruntime`` only): the activation
  ranges of the CPU INT8 model (``export.cpu_int8``). PTQ: ``tensor_amax``. QAT: the learned
  ranges plus, for the conv outputs QAT leaves to TensorRT's fusions, ranges calibrated on
  images (``add_cpu_int8_ranges``).
TF-free: numpy and onnx.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from tao_qat.export.onnx_names import initializer_array
from tao_qat.export.ptq import layer_amax
from tao_qat.quantization.numeric import MIN_AMAX

logger = logging.getLogger(__name__)


@dataclass
class Int8Scales:
    """Ranges of one exported model (see the module docstring).

    Attributes:
        source: "qat" (learned ranges) or "ptq" (calibrated on images).
        tensor_amax: {ONNX tensor name: amax >= 0} for the cache and the JSON.
        activation_amax: {Keras layer name: amax > 0} for activation Q/DQ.
        weight_amax: {conv layer name: float32 [C_out] or float} for weight Q/DQ.
        cpu_tensor_amax: {ONNX tensor name: amax} of the CPU INT8 model ({} if not made).
        cpu_calibrated: tensors of ``cpu_tensor_amax`` calibrated on images although the model
            is QAT (the ones it has no range for).
    """

    source: str
    tensor_amax: dict = field(default_factory=dict)
    activation_amax: dict = field(default_factory=dict)
    weight_amax: dict = field(default_factory=dict)
    cpu_tensor_amax: dict = field(default_factory=dict)
    cpu_calibrated: list = field(default_factory=list)


def scales_from_qat(activation_amax, weight_amax, names):
    """Int8Scales of a peeled-out QAT model.

    Args:
        activation_amax, weight_amax: from ``quantization.extract_quantization``.
        names: OnnxNames of the exported float graph (layer -> tensor).
    """
    tensor_amax = {names.tensor(layer): float(amax) for layer, amax in activation_amax.items()}
    return Int8Scales("qat", tensor_amax, dict(activation_amax), dict(weight_amax))


def kernel_amax(onnx_model, initializer):
    """max |w| per output channel of an OIHW conv kernel initializer: float32 [O]."""
    kernel = initializer_array(onnx_model, initializer)
    return np.abs(kernel).reshape(kernel.shape[0], -1).max(axis=1).astype(np.float32)


def scales_from_calibration(tensor_amax, names, onnx_model, plan):
    """Int8Scales from PTQ calibration.

    Args:
        tensor_amax: {ONNX tensor: amax} from ``export.ptq.calibrate_onnx``.
        names: OnnxNames of ``onnx_model``.
        onnx_model: the float onnx.ModelProto that was calibrated.
        plan: QuantizationPlan (``quantization.policy.plan_quantization``) of the float model.
    """
    by_layer = layer_amax(tensor_amax, names)
    activations = {}
    for layer in plan.activation_layers:
        if layer not in by_layer:
            logger.debug("no calibrated tensor for planned layer %s; left float", layer)
            continue
        activations[layer] = max(float(by_layer[layer]), MIN_AMAX)  # a dead tensor: tiny range
    weights = {
        layer: kernel_amax(onnx_model, names.conv_kernels[layer])
        for layer in plan.weight_layers
        if layer in names.conv_kernels
    }
    return Int8Scales("ptq", dict(tensor_amax), activations, weights)


def add_cpu_int8_ranges(scales, onnx_model, calibrate=None):
    """Fill ``scales.cpu_tensor_amax`` (and ``cpu_calibrated``) for the CPU INT8 model.

    Args:
        scales: Int8Scales of ``onnx_model``.
        onnx_model: the exported float onnx.ModelProto.
        calibrate: QAT only: ``calibrate(tensor_names) -> {tensor: amax}`` for the tensors the
            CPU graph quantizes and QAT has no range for (``uncovered_activation_tensors``).
    Returns:
        ``scales`` (updated in place).
    """
    from tao_qat.export.cpu_int8 import uncovered_activation_tensors

    scales.cpu_tensor_amax = dict(scales.tensor_amax)
    if scales.source != "qat":
        return scales  # PTQ calibrated every float tensor
    missing = uncovered_activation_tensors(onnx_model, scales.tensor_amax)
    if missing:
        if calibrate is None:
            raise RuntimeError(f"QAT ranges lack {missing[:4]} and nothing calibrates them")
        calibrated = calibrate(missing)
        scales.cpu_tensor_amax.update({t: float(calibrated[t]) for t in missing})
        scales.cpu_calibrated = list(missing)
    return scales


def graph_tensors(onnx_model):
    """Names of the graph inputs and of every tensor a node produces."""
    graph = onnx_model.graph
    return {inp.name for inp in graph.input} | {
        out for node in graph.node for out in node.output if out
    }


def check_tensor_keys(tensor_amax, onnx_model):
    """Internal invariant: every cache key names a tensor of ``onnx_model`` (RuntimeError)."""
    missing = sorted(set(tensor_amax) - graph_tensors(onnx_model))
    if missing:
        raise RuntimeError(f"calibration cache keys missing from the ONNX graph: {missing[:5]}")

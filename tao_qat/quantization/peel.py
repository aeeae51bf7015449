"""Peel-out for export: QAT model -> float model + scales dict (TAO §6 process_quantized_layers).

``extract_quantization`` is the inverse of ``qat.create_qat_model``: it drops the input
quantizers, unwraps every ``TrtQuantizeWrapper`` (the float layer keeps its name and its float,
not pre-quantized, weights) and collects the ranges in the format of docs/design.md "The scales
dict": activation amax keyed by the Keras layer whose output is quantized (``input_1`` for the
network input), weight amax keyed by the conv layer (float32 [C_out] per channel, or a float).
"""

import copy

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.quantization import numeric
from tao_qat.quantization.graph import layer_name, node_references
from tao_qat.quantization.layers import (
    QuantizeLayer,
    TrtQuantizeWrapper,
    input_quantizer_variables,
)
from tao_qat.quantization.qat import (
    all_custom_objects,
    copy_weights_by_name,
    quantized_layer_names,
)


def _single_input(entry):
    refs = list(node_references(entry.get("inbound_nodes", [])))
    if len(refs) != 1:
        raise UsageError(f"layer {layer_name(entry)!r}: a quantize layer needs exactly one input")
    return refs[0]


def quantizer_map(model):
    """Locate the quantizers of a QAT model by the float layer they belong to.

    Returns:
        (activations, weights): activations {float layer name whose output is quantized:
        {"amax", "amax_weight"} variables}; weights {float conv name: (kernel variable,
        SymmetricWeightQuantizer)}; both in graph order. Raises UsageError for quantization
        layers this package did not write (e.g. TFMOT's default scheme).
    """
    config = model.get_config()
    foreign = set(quantized_layer_names(model))
    activations, weights = {}, {}
    for entry in config["layers"]:
        name = layer_name(entry)
        layer = model.get_layer(name)
        if isinstance(layer, QuantizeLayer):
            variables = input_quantizer_variables(layer)
            if variables is not None:
                activations[_single_input(entry)[0]] = variables
        elif isinstance(layer, TrtQuantizeWrapper):
            variables = layer.output_quantizer_variables()
            if variables is not None:
                activations[layer.layer.name] = variables
            for kernel, quantizer in layer.weight_quantizers():
                weights[layer.layer.name] = (kernel, quantizer)
        else:
            continue
        foreign.discard(name)
    if foreign:
        raise UsageError(
            f"model {model.name!r}: layers {sorted(foreign)[:3]} use a quantization scheme "
            "this package did not write; cannot peel them out"
        )
    return activations, weights


def float_config(qat_config):
    """Return (float model config, {QAT layer name: float layer name}) of a QAT model config."""
    config = copy.deepcopy(qat_config)
    renamed, bypass, layers = {}, {}, []
    for entry in config["layers"]:
        name = layer_name(entry)
        if entry["class_name"] == "QuantizeLayer":
            bypass[name] = _single_input(entry)[:3]
            continue
        if entry["class_name"] == "TrtQuantizeWrapper":
            inner = dict(entry["config"]["layer"])
            inner_name = inner["config"]["name"]
            inner.update(name=inner_name, inbound_nodes=entry.get("inbound_nodes", []))
            renamed[name] = inner_name
            entry = inner
        layers.append(entry)
    config["layers"] = layers
    refs = [ref for entry in layers for ref in node_references(entry.get("inbound_nodes", []))]
    refs += list(node_references(config["output_layers"]))
    for ref in refs:
        while ref[0] in bypass:
            ref[:3] = bypass[ref[0]]
        ref[0] = renamed.get(ref[0], ref[0])
    return config, renamed


def weight_amax_of(kernel, quantizer):
    """Weight amax of one kernel as the scales dict stores it.

    Returns:
        float32 [C_out] per output channel (DepthwiseConv2D: [C_in * multiplier] in TF's
        output channel order), or a Python float for per-tensor quantization.
    """
    values = kernel.numpy()
    amax = numeric.weight_amax(values, quantizer.reduce_axes)
    if quantizer.reduce_axes is None:
        return amax
    return amax.reshape(-1)


def extract_quantization(model, custom_objects=None):
    """Split a QAT model into its float model and its ranges.

    Args:
        model: keras.Model written by ``create_qat_model`` (trained or not, or loaded).
        custom_objects: extra {class name: class} the model's float layers need.

    Returns:
        (float_model, activation_amax, weight_amax): a keras.Model with the float layer names
        and weights and no quantization layer; {layer name: amax float > 0}; {conv layer name:
        float32 [C_out] or float}.
    """
    activations, weights = quantizer_map(model)
    config, renamed = float_config(model.get_config())
    objects = all_custom_objects(custom_objects)
    with keras.utils.custom_object_scope(objects):
        float_model = keras.Model.from_config(config, custom_objects=objects)
    by_float_name = {v: k for k, v in renamed.items()}
    for layer in float_model.layers:
        if layer.weights:
            source = model.get_layer(by_float_name.get(layer.name, layer.name))
            copy_weights_by_name(source, layer)
    activation_amax = {
        name: max(float(variables["amax"].numpy()), numeric.MIN_AMAX)
        for name, variables in activations.items()
    }
    weight_amax = {name: weight_amax_of(*pair) for name, pair in weights.items()}
    return float_model, activation_amax, weight_amax

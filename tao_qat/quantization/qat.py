"""Float model -> QAT model: a non-mutating rewrite of the model config (TAO §6, ``enable_qat``).

``create_qat_model`` plans the Q/DQ placement (``quantization.policy``), then rebuilds the
functional graph with TFMOT wrappers carrying our TensorRT quantizers (``quantization.layers``):

- a layer whose weights and/or output are quantized becomes ``TrtQuantizeWrapper`` named
  ``quant_<name>`` around a copy of the float layer (same config, same weights);
- a quantized network input gets a ``QuantizeLayer`` named ``quant_<input>`` right after it;
- every other layer (BN inside Conv-BN-ReLU, padding, the heads ...) is copied unchanged.

The float model is not modified and shares no variable with the QAT model.
"""

import copy
import logging

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.layers import CUSTOM_OBJECTS
from tao_qat.quantization.graph import layer_name, node_references
from tao_qat.quantization.layers import (
    QAT_CUSTOM_OBJECTS,
    EmaActivationQuantizer,
    QuantizeLayer,
    TrtQuantizeConfig,
    TrtQuantizeWrapper,
)
from tao_qat.quantization.naming import QUANTIZED_LAYER_CLASSES, qat_layer_name
from tao_qat.quantization.policy import WEIGHTED_LAYERS, QuantizationPolicy, plan_quantization

logger = logging.getLogger(__name__)


def all_custom_objects(custom_objects=None):
    """Model custom objects + QAT classes + the caller's, for ``from_config`` / loading."""
    return {**CUSTOM_OBJECTS, **QAT_CUSTOM_OBJECTS, **(custom_objects or {})}


def is_qat_model(model):
    """True if any layer of ``model`` is a quantization layer (ours, TFMOT's or TAO's)."""
    return bool(quantized_layer_names(model))


def quantized_layer_names(model):
    """Names of the layers of ``model`` that are quantization layers or wrappers."""
    return [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in QUANTIZED_LAYER_CLASSES
        or isinstance(layer, (QuantizeLayer, TrtQuantizeWrapper))
    ]


def _serialize(obj):
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def _quantize_config(entry, decision, policy):
    weight_attr = reduce_axes = None
    if decision.quantize_weights:
        weight_attr, axes = WEIGHTED_LAYERS[entry["class_name"]]
        reduce_axes = axes if policy.per_channel_weights else None
    return TrtQuantizeConfig(
        weight_attr=weight_attr,
        reduce_axes=reduce_axes,
        quantize_output=decision.quantize_output,
        ema_decay=policy.ema_decay,
        initial_amax=policy.initial_amax,
    )


def _wrapper_entry(entry, decision, policy):
    inner = {key: value for key, value in entry.items() if key not in ("name", "inbound_nodes")}
    name = qat_layer_name(layer_name(entry))
    return {
        "class_name": "TrtQuantizeWrapper",
        "config": {
            "name": name,
            "trainable": entry["config"].get("trainable", True),
            "dtype": entry["config"].get("dtype", "float32"),
            "layer": inner,
            "quantize_config": _serialize(_quantize_config(entry, decision, policy)),
        },
        "name": name,
        "inbound_nodes": entry.get("inbound_nodes", []),
    }


def _input_quantizer_entry(entry, policy):
    name = qat_layer_name(layer_name(entry))
    quantizer = EmaActivationQuantizer(policy.ema_decay, policy.initial_amax)
    return {
        "class_name": "QuantizeLayer",
        "config": {"name": name, "trainable": False, "quantizer": _serialize(quantizer)},
        "name": name,
        "inbound_nodes": [[[layer_name(entry), 0, 0, {}]]],
    }


def quantized_config(float_config, plan, policy):
    """Return the QAT model config for a float functional model config and its plan.

    Returns:
        (config, renamed) with renamed = {float layer name: QAT layer name} for the layers
        that were wrapped or are followed by an input quantizer.
    """
    layers, renamed = [], {}
    for entry in float_config["layers"]:
        name = layer_name(entry)
        decision = plan.decisions[name]
        quantized = decision.quantize_weights or decision.quantize_output
        if entry["class_name"] == "InputLayer":
            layers.append(entry)
            if decision.quantize_output:
                layers.append(_input_quantizer_entry(entry, policy))
                renamed[name] = qat_layer_name(name)
        elif quantized:
            layers.append(_wrapper_entry(entry, decision, policy))
            renamed[name] = qat_layer_name(name)
        else:
            layers.append(entry)
    config = {**float_config, "layers": layers}
    # Consumers read the wrapper / input quantizer instead of the float layer; the input
    # quantizer itself keeps reading the InputLayer.
    for entry in layers:
        if entry["class_name"] == "QuantizeLayer":
            continue
        for ref in node_references(entry.get("inbound_nodes", [])):
            ref[0] = renamed.get(ref[0], ref[0])
    for ref in node_references(config["output_layers"]):
        ref[0] = renamed.get(ref[0], ref[0])
    return config, renamed


def short_weight_name(variable):
    """``kernel`` for ``quant_conv1/kernel:0``: the name of a weight within its layer."""
    return variable.name.split(":")[0].split("/")[-1]


def copy_weights_by_name(source_layer, target_layer):
    """Assign the weights two layers share by name (``kernel``, ``gamma``, ...) source -> target.

    One side is a float layer, the other its QAT wrapper, which also holds quantizer
    variables; every weight of the float side must exist on the other side.
    """
    source = {short_weight_name(v): v for v in source_layer.weights}
    target = {short_weight_name(v): v for v in target_layer.weights}
    float_side = source if len(source) <= len(target) else target
    missing = sorted(set(float_side) - (set(source) & set(target)))
    if missing:
        raise AssertionError(f"{source_layer.name} -> {target_layer.name}: no match for {missing}")
    for key in float_side:
        target[key].assign(source[key].read_value())


def create_qat_model(model, policy=None, custom_objects=None):
    """Return a QAT copy of a float functional DetectNet_v2 (or any flat functional) model.

    Args:
        model: float keras.Model (fresh, trained, or a pruned graph from ``load_graph``).
        policy: QuantizationPolicy (default: per-channel weights, TAO's EMA settings).
        custom_objects: extra {class name: class} the model's layers need.

    Returns:
        keras.Model with the same name, inputs and outputs (``output_cov`` / ``output_bbox``
        unchanged), the float weights, and activation amax variables at ``initial_amax``.

    Raises:
        UsageError if ``model`` is already quantized, is not functional, or the policy names
        layers the model does not have.
    """
    policy = policy or QuantizationPolicy()
    already = quantized_layer_names(model)
    if already:
        raise UsageError(
            f"model {model.name!r} is already quantized (layers {', '.join(already[:3])}...); "
            "QAT needs a float model"
        )
    if not getattr(model, "_is_graph_network", False) or isinstance(model, keras.Sequential):
        raise UsageError(f"model {model.name!r}: QAT needs a functional Keras model")
    float_config = copy.deepcopy(model.get_config())
    plan = plan_quantization(float_config, policy)
    config, renamed = quantized_config(float_config, plan, policy)
    objects = all_custom_objects(custom_objects)
    with keras.utils.custom_object_scope(objects):
        qat = keras.Model.from_config(config, custom_objects=objects)
    for layer in model.layers:
        if layer.weights:
            target = qat.get_layer(renamed.get(layer.name, layer.name))
            copy_weights_by_name(layer, target)
    logger.info(
        "QAT model: %d activation Q/DQ, %d quantized weight tensors (%s)",
        len(plan.activation_layers),
        len(plan.weight_layers),
        "per channel" if policy.per_channel_weights else "per tensor",
    )
    return qat

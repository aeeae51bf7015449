"""Graph surgery: rebuild a physically smaller tf_keras model from a PruningPlan (TAO §7).

Non-mutating: the functional config of the original model is copied, the ``filters`` of every
prunable layer set to its kept count, and a new model is built from it; its weights are the
original ones sliced with numpy (kernels and biases on the output axis, per-channel weights
such as BN's gamma / beta / moving statistics on the channel axis, kernels of the consumers on
their input axis -2). The original model is left untouched and usable.
"""

import copy
import logging

import numpy as np

from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.layers import CUSTOM_OBJECTS
from tao_qat.pruning.rules import (
    CHANNEL_WEIGHTS,
    DEFAULT_RULES,
    PASS_KIND,
    PRUNABLE_KIND,
    UnprunableModelError,
)

logger = logging.getLogger(__name__)


def _short_name(variable):
    """``block_1a_bn_1/moving_mean:0`` -> ``moving_mean``."""
    return variable.name.split("/")[-1].split(":")[0]


def layer_weights(model):
    """Return {layer name: {weight name: np.ndarray}} of the layers that have weights."""
    weights = {}
    for layer in model.layers:
        if layer.weights:
            arrays = layer.get_weights()
            weights[layer.name] = {
                _short_name(v): a for v, a in zip(layer.weights, arrays, strict=True)
            }
    return weights


def slice_layer_weights(node, arrays, plan, rules=DEFAULT_RULES):
    """Return the pruned copy of one layer's {weight name: array} (numpy only).

    Prunable layers: ``kernel`` [.., C_in, F] -> [.., C_in', F'], ``bias`` [F] -> [F'], other
    weights copied. CHANNEL_WEIGHTS pass-through layers: every weight sliced on its last axis
    with the kept input channels. Everything else copied.
    """
    out = {}
    if node.kind == PRUNABLE_KIND:
        in_keep, out_keep = plan.input_keep(node.name), plan.output_keep(node.name)
        for key, array in arrays.items():
            if key == "kernel":
                out[key] = np.take(np.take(array, in_keep, axis=-2), out_keep, axis=-1)
            elif key == "bias":
                out[key] = np.take(array, out_keep, axis=0)
            else:
                out[key] = np.array(array)
    elif node.kind == PASS_KIND and rules.weight_policy(node.class_name) == CHANNEL_WEIGHTS:
        in_keep = plan.input_keep(node.name)
        for key, array in arrays.items():
            if array.ndim == 0 or array.shape[-1] != node.channels:
                raise UnprunableModelError(
                    f"layer {node.name!r}: weight {key} of shape {array.shape} is not per "
                    f"channel ({node.channels} channels)"
                )
            out[key] = np.take(array, in_keep, axis=-1)
    else:
        out = {key: np.array(array) for key, array in arrays.items()}
    return out


def pruned_config(model_config, plan):
    """Deep copy of a functional model config with the kept filter counts.

    ``build_config`` entries (input shapes recorded at save time) are dropped; the layers are
    built from the new graph.
    """
    config = copy.deepcopy(model_config)
    for entry in config["layers"]:
        entry.pop("build_config", None)
        node = plan.analysis.nodes[entry["name"]]
        if node.kind == PRUNABLE_KIND:
            entry["config"]["filters"] = int(len(plan.retained[node.name]))
    return config


def apply_plan(model, plan, rules=DEFAULT_RULES, custom_objects=None, weights=None):
    """Return a new, physically smaller keras.Model; ``model`` is not modified.

    Args:
        model: functional keras.Model the plan was made for.
        plan: PruningPlan (``plan.plan_pruning``).
        rules: LayerRules used for the plan.
        custom_objects: extra {class name: class} needed to rebuild the model (e.g. QAT layers).
        weights: ``layer_weights(model)`` if already read.

    Returns:
        keras.Model with the same layer names, the kept filters and sliced weights.
    """
    weights = weights if weights is not None else layer_weights(model)
    new = keras.Model.from_config(
        pruned_config(model.get_config(), plan),
        custom_objects={**CUSTOM_OBJECTS, **(custom_objects or {})},
    )
    for layer in new.layers:
        if not layer.weights:
            continue
        node = plan.analysis.nodes[layer.name]
        sliced = slice_layer_weights(node, weights[layer.name], plan, rules)
        layer.set_weights([sliced[_short_name(v)] for v in layer.weights])
    logger.info(
        "rebuilt %s: %d -> %d parameters", model.name, model.count_params(), new.count_params()
    )
    return new

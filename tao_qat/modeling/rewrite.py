"""Non-mutating rebuilds of a functional model from its config (regularizers, freezing, input).

Used for models that were loaded rather than built (``load_graph``, TAO §2): the regularizer
of the spec is re-applied, ``freeze_blocks`` / ``freeze_bn`` take effect, the input size can
change (the nets are fully convolutional) and the outputs are put in the order
[output_cov, output_bbox]. The new model gets copies of the old weights, layer by layer.
"""

import copy

from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import BBOX_NAME, COV_NAME
from tao_qat.modeling.layers import CUSTOM_OBJECTS
from tao_qat.modeling.resnet import block_of_layer

BN_CLASSES = ("BatchNormalization", "FrozenBatchNormalization")


def _edit_layer(entry, regularizer, freeze_blocks, freeze_bn):
    config = entry["config"]
    if "kernel_regularizer" in config:
        serialized = keras.regularizers.serialize(regularizer) if regularizer else None
        config["kernel_regularizer"] = serialized
        if "bias_regularizer" in config:
            config["bias_regularizer"] = copy.deepcopy(serialized)
        block = block_of_layer(config["name"])
        if "kernel_size" in config and block is not None:
            config["trainable"] = block not in freeze_blocks
    if entry["class_name"] in BN_CLASSES:
        frozen = BN_CLASSES[1]
        entry["class_name"] = frozen if freeze_bn else BN_CLASSES[0]
        # tf_keras resolves custom classes by ``registered_name``, built-ins by module + name.
        entry["module"] = None if freeze_bn else "keras.layers"
        entry["registered_name"] = frozen if freeze_bn else None


def _order_outputs(config):
    """Put output_cov first and output_bbox second when both are model outputs."""
    outputs = config["output_layers"]
    names = [out[0] for out in outputs]
    if COV_NAME in names and BBOX_NAME in names:
        rank = {COV_NAME: 0, BBOX_NAME: 1}
        config["output_layers"] = sorted(outputs, key=lambda out: rank.get(out[0], 2))


def apply_training_options(
    model,
    *,
    regularizer=None,
    freeze_blocks=(),
    freeze_bn=False,
    input_shape=None,
    custom_objects=None,
):
    """Return a rebuilt copy of ``model`` with the spec's training options applied.

    Args:
        model: functional keras.Model (e.g. loaded from a pruned .hdf5).
        regularizer: Keras regularizer set on the kernel and bias of every layer that has a
            ``kernel_regularizer`` (convs, heads included); None removes regularizers.
        freeze_blocks: block ids (0 = conv1) whose conv layers become non-trainable; the
            convs of the other blocks become trainable (the spec decides, not the file).
        freeze_bn: every BN becomes FrozenBatchNormalization if true, plain BN if false.
        input_shape: new (H, W, C) for the input layer, or None to keep it.
        custom_objects: extra {class name: class} needed by the model's config.

    Returns:
        New keras.Model (same layer names and weights); ``model`` is not modified.
    """
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer" and input_shape is not None:
            entry["config"]["batch_input_shape"] = [None, *input_shape]
        _edit_layer(entry, regularizer, frozenset(freeze_blocks), freeze_bn)
    _order_outputs(config)
    new = keras.Model.from_config(
        config, custom_objects={**CUSTOM_OBJECTS, **(custom_objects or {})}
    )
    for layer in model.layers:
        if layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new

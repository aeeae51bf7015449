"""DetectNet_v2 model: ResNet backbone + ``output_cov`` / ``output_bbox`` heads (TAO §2, §1.4).

Outputs are ``[output_cov, output_bbox]``: ``output_cov`` [B, H/16, W/16, C] (sigmoid) and
``output_bbox`` [B, H/16, W/16, 4C] (linear, class-major L, T, R, B). Consumers look outputs
up by name (``model.get_layer("output_cov")`` / ``model.output_names``), never by position.
"""

import logging

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.regularizers import build_regularizer
from tao_qat.modeling.resnet import FREEZABLE_BLOCKS, RESNET_LAYOUTS, resnet_backbone

logger = logging.getLogger(__name__)

COV_NAME = "output_cov"
BBOX_NAME = "output_bbox"
INPUT_NAME = "input_1"
SUPPORTED_ARCHS = ("resnet",)


def model_name(num_layers, use_batch_norm):
    """TAO's Keras model name, e.g. ``resnet18_nopool_bn_detectnet_v2``."""
    return f"resnet{num_layers}_nopool{'_bn' if use_batch_norm else ''}_detectnet_v2"


def check_architecture(arch, num_layers, use_pooling, field="model_config"):
    """Raise SpecError unless (arch, num_layers, use_pooling) is a model we build."""
    arch = arch or "resnet"
    if arch not in SUPPORTED_ARCHS:
        raise SpecError(
            f"{field}.arch: arch {arch} is not supported (supported: {', '.join(SUPPORTED_ARCHS)})"
        )
    if num_layers not in RESNET_LAYOUTS:
        raise SpecError(
            f"{field}.num_layers: ResNet-{num_layers} is not supported "
            f"(supported: {', '.join(str(n) for n in RESNET_LAYOUTS)})"
        )
    if use_pooling:
        raise SpecError(
            f"{field}.use_pooling: true is not supported: TAO's pooled ResNet ends with a 7x7 "
            "average pool of stride 7, so the output grid no longer has stride 16 and the "
            "DetectNet_v2 targets cannot be encoded; set use_pooling: false"
        )


def find_feature_layer(backbone, name_part, field):
    """Return the backbone layer whose name equals ``name_part`` or uniquely contains it."""
    exact = [layer for layer in backbone.layers if layer.name == name_part]
    matches = exact or [layer for layer in backbone.layers if name_part in layer.name]
    if len(matches) != 1:
        found = ", ".join(layer.name for layer in matches[:5]) or "none"
        raise SpecError(
            f"{field}: {name_part!r} must name exactly one backbone layer (matches: {found})"
        )
    return matches[0]


def add_heads(features_cov, features_bbox, num_classes, regularizer=None):
    """Return (output_cov, output_bbox) 1x1 conv heads on the given feature tensors.

    Args:
        features_cov, features_bbox: Keras tensors [B, h, w, F] (usually the same tensor).
        num_classes: number of target classes C.
        regularizer: Keras regularizer for kernels and biases, or None.
    """
    common = dict(
        kernel_size=1,
        strides=1,
        padding="valid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=regularizer,
        bias_regularizer=regularizer,
    )
    cov = keras.layers.Conv2D(num_classes, activation="sigmoid", name=COV_NAME, **common)(
        features_cov
    )
    bbox = keras.layers.Conv2D(4 * num_classes, activation="linear", name=BBOX_NAME, **common)(
        features_bbox
    )
    return cov, bbox


def build_detectnet_v2(
    num_layers=18,
    num_classes=1,
    input_shape=(384, 384, 3),
    *,
    all_projections=False,
    use_batch_norm=True,
    freeze_blocks=(),
    freeze_bn=False,
    regularizer=None,
    cov_input="",
    bbox_input="",
    arch="resnet",
    use_pooling=False,
    symmetric_padding=True,
):
    """Build a DetectNet_v2 Keras model from plain values.

    Args:
        num_layers: ResNet depth (10, 18, 34, 50).
        num_classes: number of target classes C (>= 1).
        input_shape: (H, W, C) of one image, C in {1, 3}; H and W should be multiples of 16.
        freeze_blocks: block ids 0..4 whose convs are not trainable (0 = conv1).
        freeze_bn: BN layers always run in inference mode.
        regularizer: Keras regularizer for every conv kernel and bias (heads included).
        cov_input, bbox_input: optional backbone layer name (or unique name part) the heads
            attach to; default the last backbone layer.
        symmetric_padding: see ``resnet_backbone`` (TAO alignment, default True).

    Returns:
        keras.Model named like ``resnet18_nopool_bn_detectnet_v2`` with input ``input_1``
        [B, H, W, C] and outputs [output_cov [B, H/16, W/16, C], output_bbox [.., 4C]].
    """
    check_architecture(arch, num_layers, use_pooling)
    if num_classes < 1:
        raise SpecError(f"cost_function_config.target_classes: need >= 1 class, got {num_classes}")
    bad = [b for b in freeze_blocks if b not in FREEZABLE_BLOCKS]
    if bad:
        raise SpecError(
            f"model_config.freeze_blocks: {bad} not in {list(FREEZABLE_BLOCKS)} (0 = conv1)"
        )
    inputs = keras.Input(shape=tuple(input_shape), name=INPUT_NAME)
    features = resnet_backbone(
        inputs,
        num_layers,
        use_batch_norm=use_batch_norm,
        all_projections=all_projections,
        freeze_blocks=freeze_blocks,
        freeze_bn=freeze_bn,
        kernel_regularizer=regularizer,
        bias_regularizer=regularizer,
        symmetric_padding=symmetric_padding,
    )
    feat_cov = feat_bbox = features
    if cov_input or bbox_input:
        backbone = keras.Model(inputs, features)
        if cov_input:
            field = "model_config.objective_set.cov.input"
            feat_cov = find_feature_layer(backbone, cov_input, field).output
        if bbox_input:
            field = "model_config.objective_set.bbox.input"
            feat_bbox = find_feature_layer(backbone, bbox_input, field).output
    cov, bbox = add_heads(feat_cov, feat_bbox, num_classes, regularizer)
    return keras.Model(inputs, [cov, bbox], name=model_name(num_layers, use_batch_norm))


def freeze_block_ids(model_config):
    """Return ``model_config.freeze_blocks`` as ints, raising SpecError on non-integral ids."""
    ids = []
    for value in model_config.freeze_blocks:
        if value != int(value) or int(value) not in FREEZABLE_BLOCKS:
            raise SpecError(
                f"model_config.freeze_blocks: {value} is not a block id in "
                f"{list(FREEZABLE_BLOCKS)} (0 = conv1)"
            )
        ids.append(int(value))
    return tuple(ids)


def build_model(model_config, num_classes, input_shape, regularizer_config=None):
    """Build a fresh DetectNet_v2 from a ModelConfig message (no pretrained weights).

    ``num_layers`` 0 means 18. ``dropout_rate`` and ``activation`` are ignored for ResNet,
    as in TAO. See ``build_detectnet_v2`` for shapes.
    """
    if model_config.dropout_rate or model_config.HasField("activation"):
        logger.warning("model_config.dropout_rate / activation are ignored for resnet (as in TAO)")
    objectives = model_config.objective_set
    return build_detectnet_v2(
        num_layers=model_config.num_layers or 18,
        num_classes=num_classes,
        input_shape=input_shape,
        all_projections=model_config.all_projections,
        use_batch_norm=model_config.use_batch_norm,
        freeze_blocks=freeze_block_ids(model_config),
        freeze_bn=model_config.freeze_bn,
        regularizer=build_regularizer(regularizer_config),
        cov_input=objectives.cov.input,
        bbox_input=objectives.bbox.input,
        arch=model_config.arch,
        use_pooling=model_config.use_pooling,
    )

"""``pretrained_model_file`` and ``load_graph``: weights by layer name or a whole saved graph.

TAO §2: ``.h5`` -> weights by layer name; ``.hdf5`` -> weights copied layer by layer where
the shapes match (TAO skips mismatches silently; we log them); ``load_graph: true`` -> the
saved graph itself (e.g. a pruned model) with the spec's regularizer re-applied and the heads
checked. Weights are read with h5py, so no code stored in the file is ever run. Encrypted files
(``-k``) are decrypted in memory (``model_io.open_hdf5``).
"""

import dataclasses
import logging
from pathlib import Path

from tao_qat.common.errors import DataError, SpecError
from tao_qat.modeling.detectnet import (
    BBOX_NAME,
    COV_NAME,
    add_heads,
    build_model,
    freeze_block_ids,
)
from tao_qat.modeling.model_io import load_model_file, open_hdf5
from tao_qat.modeling.regularizers import build_regularizer
from tao_qat.modeling.rewrite import apply_training_options

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class WeightLoadReport:
    """Outcome of copying weights by layer name (lists of layer names)."""

    loaded: list
    mismatched: list  # in the file, but with other shapes: skipped
    absent: list  # model layers with weights that the file does not hold


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_layer_weights(path, key=None):
    """Return {layer name: [np.ndarray, ...]} from a Keras HDF5 full-model or weights file.

    Arrays come in the order Keras saved them (``layer.weights``). ``key``: passphrase of an
    encrypted file. Raises DataError naming the file when it is missing or not a Keras HDF5
    file (or the key is wrong), UsageError when it is encrypted and no key is given.
    """
    path = Path(path)
    try:
        with open_hdf5(path, key, missing="pretrained model file not found") as handle:
            group = handle.get("model_weights", handle)
            if "layer_names" not in group.attrs:
                raise DataError(f"{path}: holds no Keras layer weights")
            weights = {}
            for layer_name in map(_decode, group.attrs["layer_names"]):
                layer_group = group[layer_name]
                names = map(_decode, layer_group.attrs.get("weight_names", []))
                arrays = [layer_group[name][()] for name in names]
                if arrays:
                    weights[layer_name] = arrays
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a readable Keras HDF5 file ({err})") from None
    return weights


def copy_weights_by_name(model, layer_weights, source="pretrained file"):
    """Set the weights of every ``model`` layer found by name with identical shapes.

    Args:
        model: keras.Model to update in place.
        layer_weights: {layer name: [arrays]} (``read_layer_weights``).
        source: name used in log messages.

    Returns:
        WeightLoadReport. Mismatched layers keep their current (initial) weights.
    """
    report = WeightLoadReport([], [], [])
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = layer_weights.get(layer.name)
        if arrays is None:
            report.absent.append(layer.name)
        elif [tuple(w.shape) for w in layer.weights] != [a.shape for a in arrays]:
            report.mismatched.append(layer.name)
        else:
            layer.set_weights(arrays)
            report.loaded.append(layer.name)
    logger.info("%s: loaded weights of %d layers", source, len(report.loaded))
    if report.mismatched:
        logger.warning(
            "%s: skipped %d layers whose weight shapes differ: %s",
            source,
            len(report.mismatched),
            ", ".join(report.mismatched[:8]),
        )
    if report.absent:
        logger.info(
            "%s: %d layers not in the file keep their initial weights: %s",
            source,
            len(report.absent),
            ", ".join(report.absent[:8]),
        )
    return report


def load_pretrained_weights(model, path, key=None):
    """Copy weights from ``path`` (.h5 weights or .hdf5 model, plain or encrypted with ``key``)
    into ``model`` by layer name."""
    return copy_weights_by_name(model, read_layer_weights(path, key), source=str(path))


def head_problems(model, num_classes):
    """Return a list of reasons why the model's heads do not fit ``num_classes`` (empty = ok)."""
    problems = []
    outputs = set(model.output_names)
    for name, channels in ((COV_NAME, num_classes), (BBOX_NAME, 4 * num_classes)):
        if name not in outputs:
            problems.append(f"has no output layer {name!r}")
            continue
        found = model.get_layer(name).output_shape[-1]
        if found != channels:
            problems.append(f"{name} has {found} channels, expected {channels}")
    return problems


def _feature_tensor(model):
    """Backbone tensor the heads read: input of output_cov if present, else the last layer."""
    for name in (COV_NAME, BBOX_NAME):
        if name in [layer.name for layer in model.layers]:
            return model.get_layer(name).input
    return model.layers[-1].output


def replace_heads(model, num_classes, regularizer=None):
    """Return a model with fresh output_cov / output_bbox heads on the loaded backbone."""
    from tao_qat.common.tensorflow_setup import keras

    cov, bbox = add_heads(*[_feature_tensor(model)] * 2, num_classes, regularizer)
    return keras.Model(model.inputs, [cov, bbox], name=model.name)


def _load_graph(model_config, regularizer, num_classes, input_shape, key):
    path = model_config.pretrained_model_file
    model = load_model_file(path, key=key)
    from tao_qat.quantization.naming import is_qat_config

    if is_qat_config(model.get_config()):
        raise SpecError(
            f"model_config.pretrained_model_file: {path} is already quantized (QAT); load_graph "
            "needs a float model (an interrupted QAT run resumes by re-running its command)"
        )
    channels = model.input_shape[-1]
    if channels != input_shape[-1]:
        raise DataError(
            f"{path}: model input has {channels} channels but the spec asks for "
            f"{input_shape[-1]} (augmentation_config.preprocessing.output_image_channel)"
        )
    problems = head_problems(model, num_classes)
    if problems:
        if not model_config.allow_loaded_model_modification:
            raise SpecError(
                f"{path}: loaded model {'; '.join(problems)} for {num_classes} target classes "
                "(set model_config.allow_loaded_model_modification: true to replace the heads)"
            )
        logger.warning("%s: %s; replacing the heads", path, "; ".join(problems))
        model = replace_heads(model, num_classes)
    new_shape = None if tuple(model.input_shape[1:]) == tuple(input_shape) else input_shape
    return apply_training_options(
        model,
        regularizer=regularizer,
        freeze_blocks=freeze_block_ids(model_config),
        freeze_bn=model_config.freeze_bn,
        input_shape=new_shape,
    )


def build_or_load_model(model_config, regularizer_config, num_classes, input_shape, key=None):
    """Return the model the trainer starts from, following ``model_config`` (TAO §2).

    - ``load_graph: true``: the saved graph of ``pretrained_model_file`` (e.g. pruned), with
      the spec's regularizer / freeze options and input size applied and the heads checked.
    - ``pretrained_model_file`` set: a fresh model with weights copied by layer name.
    - otherwise: a fresh, randomly initialised model.

    Args:
        model_config: ModelConfig message; regularizer_config: RegularizerConfig or None.
        num_classes: number of target classes; input_shape: (H, W, C).
        key: passphrase of encrypted pretrained files (None / "" = plain files).
    """
    path = model_config.pretrained_model_file
    if not path:
        for flag in ("load_graph", "freeze_pretrained_layers"):
            if getattr(model_config, flag):
                raise SpecError(f"model_config.{flag}: needs model_config.pretrained_model_file")
        if len(model_config.freeze_blocks):
            raise SpecError(
                "model_config.freeze_blocks: needs model_config.pretrained_model_file "
                "(frozen random weights would never learn)"
            )
    if model_config.load_graph:
        return _load_graph(
            model_config,
            build_regularizer(regularizer_config),
            num_classes,
            tuple(input_shape),
            key,
        )
    model = build_model(model_config, num_classes, input_shape, regularizer_config)
    if path:
        load_pretrained_weights(model, path, key=key)
    return model

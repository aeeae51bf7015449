"""Optional max calibration of a fresh QAT model's activation amax from a few batches.

Not in TAO (its QDQ amax starts at 6.0 and the first training step replaces it with that
batch's max |x|, tao_detectnet_v2.md §6). ``calibrate_ranges`` runs the float model (peeled
out of the QAT model) on a few batches and sets every activation amax to the largest |x| seen
at that tensor. The calibrated amax then counts as a full observation in the moving average
(weight 1): training continues it as amax <- 0.999 * amax + 0.001 * batch_amax instead of
restarting from the first batch.
"""

import logging

import numpy as np

from tao_qat.common.errors import DataError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.quantization import numeric
from tao_qat.quantization.peel import extract_quantization, quantizer_map

logger = logging.getLogger(__name__)


def _images(batch):
    if isinstance(batch, dict):
        return batch["images"]
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def collect_amax(float_model, layer_names, batches, max_batches=None):
    """max |x| of the outputs of ``layer_names`` over ``batches`` (inference mode).

    Args:
        float_model: float keras.Model.
        layer_names: layer names whose outputs are measured (an input layer measures the input).
        batches: iterable of images float32 [B, H, W, C], of (images, ...) tuples or of
            pipeline dicts with "images".
        max_batches: stop after this many batches (None: all).

    Returns:
        {layer name: float amax}; raises DataError if ``batches`` is empty.
    """
    outputs = [float_model.get_layer(name).output for name in layer_names]
    probe = keras.Model(float_model.inputs, outputs)
    amax = dict.fromkeys(layer_names, 0.0)
    count = 0
    for batch in batches:
        if max_batches is not None and count >= max_batches:
            break
        values = probe(_images(batch), training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for name, value in zip(layer_names, values, strict=True):
            amax[name] = max(amax[name], float(np.max(np.abs(value))))
        count += 1
    if count == 0:
        raise DataError("calibrate_ranges: no calibration batch was given")
    return amax


def calibrate_ranges(model, batches, max_batches=None):
    """Set every activation amax of a QAT model to the max |x| of the float model on ``batches``.

    Args:
        model: QAT keras.Model from ``create_qat_model`` (modified in place: amax variables).
        batches: see ``collect_amax``.
        max_batches: number of batches to use (None: all of ``batches``).

    Returns:
        {layer name: amax} as set (floored at numeric.MIN_AMAX).
    """
    float_model, _, _ = extract_quantization(model)
    activations, _ = quantizer_map(model)
    measured = collect_amax(float_model, list(activations), batches, max_batches)
    for name, variables in activations.items():
        measured[name] = max(measured[name], numeric.MIN_AMAX)
        variables["amax"].assign(measured[name])
        variables["amax_weight"].assign(1.0)
    logger.info("calibrated %d activation ranges (max |x|)", len(measured))
    return measured

"""Symmetric INT8 fake quantization in TensorFlow with a straight-through gradient.

Same formulas as ``quantization.numeric`` (int8_calibration.md §0): s = amax / 127,
q = clip(round_half_even(x / s), -127, 127) * s, zero point 0. Built from plain TF ops because
per-channel ``quantize_and_dequantize_v2`` with ``range_given=True`` fails on CPU (trials.md).
The gradient is the identity for ``x`` everywhere (as TAO's QDQ and NVIDIA's toolkit) and zero
for ``amax``.
"""

from tao_qat.common.tensorflow_setup import tf
from tao_qat.quantization.numeric import MIN_AMAX, QMAX


@tf.custom_gradient
def _fake_quantize(x, amax):
    scale = tf.maximum(amax, MIN_AMAX) / QMAX
    quantized = tf.clip_by_value(tf.round(x / scale), -QMAX, QMAX) * scale

    def grad(upstream):
        return upstream, tf.zeros_like(amax)

    return quantized, grad


def fake_quantize(x, amax):
    """Quantize-dequantize ``x`` (float32 tensor) with ``amax`` (scalar or broadcastable)."""
    amax = tf.cast(tf.convert_to_tensor(amax), x.dtype)
    return _fake_quantize(x, amax)


def weight_amax(kernel, reduce_axes=None):
    """max |w| over ``reduce_axes`` (kept as size-1 axes), or of the whole tensor if None."""
    return tf.stop_gradient(tf.reduce_max(tf.abs(kernel), axis=reduce_axes, keepdims=True))


def batch_amax(x):
    """max |x| of a batch (scalar): TAO's max(|min(min(x), 0)|, max(max(x), 0))."""
    return tf.stop_gradient(tf.reduce_max(tf.abs(x)))


def ema_update(amax, weight, observed, decay):
    """Tensor version of ``numeric.ema_update``; returns (new_amax, new_weight)."""
    new_weight = decay * weight + (1.0 - decay)
    new_amax = (decay * weight * amax + (1.0 - decay) * observed) / new_weight
    return new_amax, new_weight

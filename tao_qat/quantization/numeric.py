"""Symmetric INT8 arithmetic in numpy: scales, fake quantization, weight amax, amax EMA (TF-free).

Reference: int8_calibration.md §0 (TensorRT: symmetric, zero point 0, s = amax / 127,
round half to even) and tao_detectnet_v2.md §6 (TAO's moving-average amax). The TensorFlow
quantizers (``quantization.fake_quant``) implement the same formulas; tests compare them with
these functions, and export / PTQ code uses them directly.
"""

import numpy as np

NUM_BITS = 8
QMAX = 127  # narrow range: integers in [-127, 127], zero point 0
MIN_AMAX = 1e-8  # floor of every amax (an all-zero tensor or channel would give scale 0)


def scale_from_amax(amax):
    """TensorRT scale s = amax / 127 (float or array), with amax floored at MIN_AMAX."""
    return np.maximum(np.asarray(amax, dtype=np.float32), np.float32(MIN_AMAX)) / np.float32(QMAX)


def fake_quantize(x, amax):
    """Quantize-dequantize: clip(round_half_even(x / s), -127, 127) * s with s = amax / 127.

    Args:
        x: float array.
        amax: float, or array broadcastable to ``x`` (per-channel: keep the reduced axes).

    Returns:
        float32 array shaped like ``x``, every value an integer multiple of s.
    """
    scale = scale_from_amax(amax)
    x = np.asarray(x, dtype=np.float32)
    return (np.clip(np.round(x / scale), -QMAX, QMAX) * scale).astype(np.float32)


def weight_amax(kernel, reduce_axes=None, keepdims=False):
    """max |w| per output channel (``reduce_axes``: the other axes) or per tensor (None).

    Args:
        kernel: weight array, e.g. a Conv2D kernel [kh, kw, C_in, C_out] with reduce_axes
            (0, 1, 2) -> float32 [C_out].
        reduce_axes: axes to reduce, or None for one amax of the whole tensor.
        keepdims: keep the reduced axes (size 1) so the result broadcasts against ``kernel``.

    Returns:
        float32 array (per channel, floored at MIN_AMAX) or a Python float (per tensor).
    """
    kernel = np.abs(np.asarray(kernel, dtype=np.float32))
    if reduce_axes is None:
        return max(float(kernel.max()), MIN_AMAX)
    axes = tuple(int(a) % kernel.ndim for a in reduce_axes)
    amax = np.maximum(kernel.max(axis=axes, keepdims=keepdims), np.float32(MIN_AMAX))
    return amax.astype(np.float32)


def ema_update(amax, weight, batch_amax, decay):
    """One step of the zero-debiased moving average of amax (TAO's QDQ layer, §6).

    ``weight`` is the total weight of the observations averaged so far (1 - decay**steps for
    TF's ``assign_moving_average(zero_debias=True)``; 0 before the first step, so the initial
    amax is forgotten at the first update; 1 after calibration, which then acts as a prior).

    Returns:
        (new_amax, new_weight).
    """
    new_weight = decay * weight + (1.0 - decay)
    new_amax = (decay * weight * amax + (1.0 - decay) * batch_amax) / new_weight
    return new_amax, new_weight

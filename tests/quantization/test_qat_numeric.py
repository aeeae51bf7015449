"""INT8 arithmetic: numpy reference, the TF fake-quant kernels and the TFMOT quantizers."""

import subprocess
import sys

import numpy as np
import pytest

from tao_qat.quantization import numeric


def reference(x, amax):
    """q = clip(round_half_even(x / s), -127, 127) * s, s = amax / 127 (int8_calibration §0)."""
    scale = np.float32(amax) / np.float32(127)
    return np.clip(np.round(np.float32(x) / scale), -127, 127) * scale


def test_fake_quantize_rounds_half_to_even_and_clips_narrow_range():
    # amax 127 -> scale 1: ties go to the even integer, |q| <= 127 (never -128).
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.49, 126.6, 200.0, -200.0], np.float32)
    expected = [0.0, 2.0, 2.0, 0.0, -2.0, 3.0, 127.0, 127.0, -127.0]
    np.testing.assert_array_equal(numeric.fake_quantize(x, 127.0), expected)


def test_fake_quantize_scale_is_amax_over_127_with_zero_point_zero():
    # amax 6 (TAO's initial range): s = 6/127 = 0.0472441; 1.0 / s = 21.1667 -> 21 -> 0.992126.
    assert numeric.scale_from_amax(6.0) == pytest.approx(0.0472441, rel=1e-6)
    assert numeric.fake_quantize(np.float32(1.0), 6.0) == pytest.approx(21 * 6 / 127, rel=1e-6)
    x = np.linspace(-7, 7, 1001, dtype=np.float32)
    q = numeric.fake_quantize(x, 6.0)
    np.testing.assert_array_equal(numeric.fake_quantize(-x, 6.0), -q)  # symmetric
    assert numeric.fake_quantize(np.float32(0.0), 6.0) == 0.0  # zero is exact


def test_per_channel_fake_quantize_by_hand():
    # Conv kernel [1, 1, 2, 2] with exactly representable scales: output channel 0 holds
    # (127, -2.5) -> amax 127, s = 1: -2.5 -> -2 (tie to even); channel 1 holds
    # (0.9921875, 1.984375) -> amax 1.984375 = 127/64, s = 1/64: 0.9921875 * 64 = 63.5 -> 64
    # -> 1.0 (tie to even), while a per-tensor scale (s = 1) would round it to 1.0 as well but
    # 1.984375 to 2.0.
    kernel = np.array([[[[127.0, 0.9921875], [-2.5, 1.984375]]]], np.float32)
    amax = numeric.weight_amax(kernel, (0, 1, 2), keepdims=True)
    np.testing.assert_array_equal(amax.reshape(-1), [127.0, 1.984375])
    q = numeric.fake_quantize(kernel, amax)
    np.testing.assert_array_equal(q[0, 0, :, 0], [127.0, -2.0])
    np.testing.assert_array_equal(q[0, 0, :, 1], [1.0, 1.984375])
    np.testing.assert_array_equal(numeric.fake_quantize(kernel, 127.0)[0, 0, :, 1], [1.0, 2.0])


@pytest.mark.parametrize(
    ("shape", "axes", "channels"),
    [
        ((3, 3, 4, 8), (0, 1, 2), 8),  # Conv2D [kh, kw, C_in, C_out]
        ((5, 6), (0,), 6),  # Dense [C_in, C_out]
        ((3, 3, 7, 4), (0, 1, 3), 7),  # Conv2DTranspose [kh, kw, C_out, C_in]
    ],
)
def test_weight_amax_has_one_value_per_output_channel(shape, axes, channels):
    kernel = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    amax = numeric.weight_amax(kernel, axes)
    assert amax.shape == (channels,)
    out_axis = next(a for a in range(len(shape)) if a not in axes)
    np.testing.assert_array_equal(
        amax, np.abs(np.moveaxis(kernel, out_axis, 0)).reshape(channels, -1).max(1)
    )
    assert numeric.weight_amax(kernel) == pytest.approx(np.abs(kernel).max())
    assert numeric.weight_amax(np.zeros(shape, np.float32)) == numeric.MIN_AMAX


def test_ema_update_matches_zero_debiased_moving_average():
    # TF assign_moving_average(zero_debias=True), decay 0.999, batch amax 2, 4, 1:
    # biased 0.002, 0.005998, 0.006992002 over 1 - 0.999**t = 0.001, 0.001999, 0.002997001
    # -> 2.0, 3.00050025, 2.33300 (the initial 6.0 is forgotten at the first step).
    amax, weight = 6.0, 0.0
    expected = [2.0, 0.005998 / 0.001999, 0.006992002 / 0.002997001]
    for observed, want in zip([2.0, 4.0, 1.0], expected, strict=True):
        amax, weight = numeric.ema_update(amax, weight, observed, 0.999)
        assert amax == pytest.approx(want, rel=1e-9)
    assert weight == pytest.approx(1 - 0.999**3, rel=1e-12)
    # After calibration (weight 1) the average is a plain EMA: 0.999 * 3 + 0.001 * 5 = 3.002.
    assert numeric.ema_update(3.0, 1.0, 5.0, 0.999) == pytest.approx((3.002, 1.0))


def test_tf_fake_quantize_equals_numpy_reference_per_tensor_and_per_channel():
    from tao_qat.common.tensorflow_setup import tf
    from tao_qat.quantization import fake_quant

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2, 5, 5, 16)) * 3).astype(np.float32)
    got = fake_quant.fake_quantize(tf.constant(x), 4.0).numpy()
    np.testing.assert_allclose(got, reference(x, 4.0), rtol=1e-6, atol=1e-7)
    assert np.abs(got).max() == pytest.approx(4.0, rel=1e-6)  # clipped at amax

    kernel = (rng.normal(size=(3, 3, 8, 16)) * rng.uniform(0.01, 1, 16)).astype(np.float32)
    amax_tf = fake_quant.weight_amax(tf.constant(kernel), (0, 1, 2))
    assert amax_tf.shape == (1, 1, 1, 16)
    amax_np = numeric.weight_amax(kernel, (0, 1, 2), keepdims=True)
    np.testing.assert_array_equal(amax_tf.numpy(), amax_np)
    got = fake_quant.fake_quantize(tf.constant(kernel), amax_tf).numpy()
    want = reference(kernel, amax_np)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    codes = np.round(got / (amax_np / 127))
    assert np.all(np.abs(codes) <= 127) and len(np.unique(codes)) > 100


def test_tf_fake_quantize_gradient_is_straight_through():
    from tao_qat.common.tensorflow_setup import tf
    from tao_qat.quantization import fake_quant

    x = tf.constant([-9.0, -1.0, 0.3, 5.0, 9.0])
    amax = tf.constant(6.0)
    with tf.GradientTape() as tape:
        tape.watch([x, amax])
        y = tf.reduce_sum(fake_quant.fake_quantize(x, amax) * tf.constant([1.0, 2, 3, 4, 5]))
    dx, damax = tape.gradient(y, [x, amax])
    np.testing.assert_array_equal(dx.numpy(), [1, 2, 3, 4, 5])  # identity, clipped values too
    assert float(damax) == 0.0


def test_quantize_layer_with_ema_quantizer_trains_and_infers():
    from tao_qat.common.tensorflow_setup import keras
    from tao_qat.quantization.layers import EmaActivationQuantizer, QuantizeLayer

    inputs = keras.Input((4,))
    layer = QuantizeLayer(EmaActivationQuantizer(0.999, 6.0), name="quant_x")
    model = keras.Model(inputs, layer(inputs))
    x1 = np.array([[0.5, -2.0, 1.0, 0.25]], np.float32)
    # Inference before any training: amax 6 -> s = 6/127; 0.5/s = 10.58 -> 11 -> 0.519685.
    np.testing.assert_allclose(model(x1, training=False)[0, 0], 11 * 6 / 127, rtol=1e-6)
    # First training step: amax = batch max |x| = 2.0 (zero-debiased), s = 2/127.
    np.testing.assert_allclose(model(x1, training=True), reference(x1, 2.0), rtol=1e-6)
    assert float(layer.quantizer_vars["amax"].numpy()) == pytest.approx(2.0)
    x2 = np.array([[4.0, 0.0, 0.0, 0.0]], np.float32)
    model(x2, training=True)  # second step: 0.005998 / 0.001999 = 3.0005 (see EMA test)
    assert float(layer.quantizer_vars["amax"].numpy()) == pytest.approx(3.0005, rel=1e-5)
    model(x1, training=False)  # inference leaves the range alone
    assert float(layer.quantizer_vars["amax"].numpy()) == pytest.approx(3.0005, rel=1e-5)


def test_tf_free_modules_import_without_tensorflow():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'tf_keras', 'keras'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import tao_qat.quantization as q\n"
        "from tao_qat.quantization import graph, naming, numeric, policy\n"
        "assert q.QuantizationPolicy().ema_decay == 0.999\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

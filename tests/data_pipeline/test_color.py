"""Colour matrices (tao_qat.data.color), worked by hand."""

import numpy as np

from tao_qat.common.tensorflow_setup import tf
from tao_qat.data.color import (
    ColorAugmentation,
    apply_color_matrix,
    color_matrix,
    sample_color_matrix,
)


def apply(matrix, rgb):
    return matrix.numpy()[:3, :3] @ np.asarray(rgb, np.float32) + matrix.numpy()[:3, 3]


def test_neutral_values_give_identity():
    m = color_matrix(
        contrast=0.0, contrast_center=0.5, hue_degrees=0.0, saturation=1.0, brightness=0.0
    )
    np.testing.assert_allclose(m.numpy(), np.eye(4), atol=1e-6)


def test_contrast_then_brightness():
    # Contrast c = 1 about 0.5: p -> 2 p - 0.5; then brightness + 0.1.
    # p = 0.5 -> 0.6; p = 0.7 -> 1.0; p = 0.3 -> 0.2.
    m = color_matrix(1.0, 0.5, 0.0, 1.0, 0.1)
    np.testing.assert_allclose(apply(m, [0.5, 0.7, 0.3]), [0.6, 1.0, 0.2], atol=1e-6)


def test_zero_saturation_gives_luma_grey():
    # Saturation 0 leaves only the luma row (0.299, 0.587, 0.114): red -> 0.299 everywhere;
    # (0.2, 0.4, 0.6) -> 0.0598 + 0.2348 + 0.0684 = 0.363.
    m = color_matrix(0.0, 0.5, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(apply(m, [1, 0, 0]), [0.299] * 3, atol=1e-6)
    np.testing.assert_allclose(apply(m, [0.2, 0.4, 0.6]), [0.363] * 3, atol=1e-6)


def test_hue_rotation_120_degrees_on_red():
    # U = cos 120 = -0.5, V = sin 120 = 0.8660 on (1, 0, 0):
    # R' = 0.299 + 0.701 U + 0.168 V = 0.0940; G' = 0.299 - 0.299 U - 0.328 V = 0.1645;
    # B' = 0.299 - 0.299 U + 1.25 V = 1.5311.
    m = color_matrix(0.0, 0.5, 120.0, 1.0, 0.0)
    np.testing.assert_allclose(apply(m, [1, 0, 0]), [0.0940, 0.1645, 1.5311], atol=2e-4)
    image = tf.constant([[[1.0, 0.0, 0.0]]])
    np.testing.assert_allclose(
        apply_color_matrix(image, m).numpy()[0, 0], [0.0940, 0.1645, 1.0], atol=2e-4
    )


def test_sampled_brightness_is_truncated_at_two_sigma():
    color = ColorAugmentation(color_shift_stddev=0.1)
    offsets = []
    for k in range(200):
        m = sample_color_matrix(color, tf.constant([4, k], tf.int64)).numpy()
        np.testing.assert_allclose(m[:3, :3], np.eye(3), atol=1e-6)
        assert m[0, 3] == m[1, 3] == m[2, 3]  # one offset for all channels
        offsets.append(m[0, 3])
    offsets = np.array(offsets)
    assert np.abs(offsets).max() <= 0.2 + 1e-6
    # Truncated at 2 sigma, the standard deviation is 0.88 sigma = 0.088.
    assert 0.07 < offsets.std() < 0.105


def test_identity_parameters_flagged():
    assert ColorAugmentation().is_identity
    assert not ColorAugmentation(hue_rotation_max=5.0).is_identity

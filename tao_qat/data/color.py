"""Random colour augmentation as one affine colour matrix per image (reference §1.3).

TAO's MULTISOURCE loader chains RandomBrightness, RandomHueSaturation and RandomContrast into a
single colour matrix; on a pixel they act in the order contrast, hue/saturation, brightness, and
the result is clipped to [0, 1]. Distributions (as TAO):
- contrast: c ~ N(0, (contrast_scale_max / 2)^2) truncated at 2 sigma; rgb -> (1 + c) rgb - c *
  contrast_center;
- hue: h ~ N(0, (hue_rotation_max / 2)^2) degrees truncated at 2 sigma; saturation
  s ~ 1 + U(-saturation_shift_max, saturation_shift_max); the linear hue/saturation matrix of
  https://beesbuzz.biz/code/hsv_color_transforms.php (luma weights 0.299, 0.587, 0.114);
- brightness: one offset b ~ N(0, color_shift_stddev^2) truncated at 2 sigma, added to all three
  channels (TAO passes scale_max = 2 * color_shift_stddev whose half is the sigma).
Only applied to 3-channel inputs.
"""

import math
from dataclasses import dataclass

from tao_qat.common.tensorflow_setup import tf

# Column-vector form rgb' = K rgb with K = LUMA + s cos(h) CHROMA_COS + s sin(h) CHROMA_SIN.
_LUMA = [[0.299, 0.587, 0.114]] * 3
_CHROMA_COS = [[0.701, -0.587, -0.114], [-0.299, 0.413, -0.114], [-0.299, -0.587, 0.886]]
_CHROMA_SIN = [[0.168, 0.330, -0.497], [-0.328, 0.035, 0.292], [1.25, -1.05, -0.203]]


@dataclass(frozen=True)
class ColorAugmentation:
    """Random colour augmentation parameters (``augmentation_config.color_augmentation``)."""

    color_shift_stddev: float = 0.0
    hue_rotation_max: float = 0.0  # degrees
    saturation_shift_max: float = 0.0
    contrast_scale_max: float = 0.0
    contrast_center: float = 0.5

    @classmethod
    def from_spec(cls, color):
        """Build from a ``ColorAugmentation`` message (values used as given, like TAO)."""
        return cls(
            color_shift_stddev=float(color.color_shift_stddev),
            hue_rotation_max=float(color.hue_rotation_max),
            saturation_shift_max=float(color.saturation_shift_max),
            contrast_scale_max=float(color.contrast_scale_max),
            contrast_center=float(color.contrast_center),
        )

    @property
    def is_identity(self):
        """True when every draw is the identity (nothing to apply)."""
        return not (
            self.color_shift_stddev
            or self.hue_rotation_max
            or self.saturation_shift_max
            or self.contrast_scale_max
        )


def color_matrix(contrast, contrast_center, hue_degrees, saturation, brightness):
    """Affine colour map for given values, as a float32 [4, 4] acting on (r, g, b, 1) columns.

    Args (float scalars): contrast c (0 = unchanged), contrast_center, hue rotation in degrees,
        saturation multiplier (1 = unchanged), brightness offset (0 = unchanged).
    """
    c = tf.cast(contrast, tf.float32)
    angle = tf.cast(hue_degrees, tf.float32) * (math.pi / 180.0)
    s = tf.cast(saturation, tf.float32)
    k = (
        tf.constant(_LUMA)
        + s * tf.cos(angle) * tf.constant(_CHROMA_COS)
        + s * tf.sin(angle) * tf.constant(_CHROMA_SIN)
    )
    # Contrast first, then hue/saturation, then brightness.
    linear = (1.0 + c) * k
    offset = -c * contrast_center * tf.reduce_sum(k, axis=1) + tf.cast(brightness, tf.float32)
    top = tf.concat([linear, offset[:, tf.newaxis]], axis=1)
    return tf.concat([top, tf.constant([[0.0, 0.0, 0.0, 1.0]])], axis=0)


def sample_color_matrix(color, seed):
    """Draw one random colour matrix (float32 [4, 4]) with a stateless ``seed`` (int [2])."""
    normal_seed, uniform_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z = tf.random.stateless_truncated_normal([3], seed=normal_seed)
    u = tf.random.stateless_uniform([], seed=uniform_seed, minval=-1.0, maxval=1.0)
    return color_matrix(
        contrast=z[0] * (color.contrast_scale_max / 2.0),
        contrast_center=color.contrast_center,
        hue_degrees=z[1] * (color.hue_rotation_max / 2.0),
        saturation=1.0 + u * color.saturation_shift_max,
        brightness=z[2] * color.color_shift_stddev,
    )


def apply_color_matrix(image, matrix):
    """Apply a [4, 4] colour matrix to a float32 [H, W, 3] image and clip to [0, 1]."""
    out = tf.linalg.matmul(image, matrix[:3, :3], transpose_b=True) + matrix[:3, 3]
    return tf.clip_by_value(out, 0.0, 1.0)

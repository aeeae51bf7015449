"""The single import point for TensorFlow and legacy Keras 2 (tf_keras).

Everything in tao_qat that needs TensorFlow does ``from tao_qat.common.tensorflow_setup import
tf, keras``. Importing this module sets ``TF_USE_LEGACY_KERAS=1`` (needed by
tensorflow-model-optimization) and quietens TensorFlow's C++ start-up logging, before
TensorFlow is imported. Nothing else imports ``tensorflow.keras`` or Keras 3.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]

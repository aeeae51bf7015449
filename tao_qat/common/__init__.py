"""Shared helpers: errors, the single TensorFlow/tf_keras import point, atomic file output."""

"""Tiny Keras model and fixed data shared by the training tests and their subprocess scripts."""

import numpy as np

from tao_qat.common.tensorflow_setup import keras, tf

IMAGE_SHAPE = (8, 8, 3)


def tiny_model(seed=0):
    """A 2-layer conv net: [B, 8, 8, 3] -> [B, 8, 8, 2] (no BatchNorm: batch statistics would
    differ between replicas and a single device)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    outputs = keras.layers.Conv2D(2, 1, name="head")(x)
    return keras.Model(inputs, outputs)


def tiny_data(n=16, seed=0):
    """Fixed inputs [n, 8, 8, 3] and targets [n, 8, 8, 2], float32 in [0, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *IMAGE_SHAPE), dtype=np.float32)
    y = rng.random((n, 8, 8, 2), dtype=np.float32)
    return x, y


def tiny_dataset(batch_size, n=16, seed=0):
    """``tiny_data`` as an unshuffled tf.data.Dataset of (x, y) batches."""
    x, y = tiny_data(n, seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def weights_of(model):
    """Copies of the model's weights (list of numpy arrays)."""
    return [np.array(w) for w in model.get_weights()]

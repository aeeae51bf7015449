"""Custom Keras layers of the DetectNet_v2 models and the custom-object table to load them.

TAO reference: tao_detectnet_v2.md §2 (``freeze_bn``: BN layers called in inference mode).
"""

from tao_qat.common.tensorflow_setup import keras


class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization that always normalises with its moving statistics.

    TAO's ``freeze_bn`` calls every BN with ``training=False``: the moving mean / variance are
    used and never updated, while gamma and beta stay trainable (unless the layer itself is made
    non-trainable). Making it a layer class instead of a call argument keeps the behaviour when
    a graph is cloned or rewritten (pruning, QAT) and when it is saved and loaded.
    ``isinstance(layer, keras.layers.BatchNormalization)`` stays true.
    """

    def call(self, inputs, training=None):
        return super().call(inputs, training=False)


# Every class our model files may contain beyond the built-in Keras layers. Passed explicitly
# to ``from_config`` / ``load_model`` (no import-time registration).
CUSTOM_OBJECTS = {"FrozenBatchNormalization": FrozenBatchNormalization}

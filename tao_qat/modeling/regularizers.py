"""Weight regularizer from ``training_config.regularizer`` (tao_detectnet_v2.md §1.5).

TAO applies Keras ``l1(weight)`` / ``l2(weight)`` to the kernel AND the bias of every conv,
heads included; the trainer adds ``sum(model.losses)`` to the task cost.
"""

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras

_FACTORIES = {
    "NO_REG": lambda weight: None,
    "L1": lambda weight: keras.regularizers.L1(l1=weight),
    "L2": lambda weight: keras.regularizers.L2(l2=weight),
}


def make_regularizer(kind, weight):
    """Return the Keras regularizer for ``kind`` ("NO_REG", "L1", "L2") and ``weight``, or None.

    L1 adds ``weight * sum(|w|)`` and L2 adds ``weight * sum(w**2)`` per regularised tensor.
    """
    if kind not in _FACTORIES:
        raise SpecError(
            f"training_config.regularizer.type: unknown type {kind!r} "
            f"(valid: {', '.join(_FACTORIES)})"
        )
    if weight < 0:
        raise SpecError(f"training_config.regularizer.weight: must be >= 0, got {weight}")
    if weight == 0:
        return None
    return _FACTORIES[kind](float(weight))


def build_regularizer(regularizer_config):
    """Turn a RegularizerConfig message (or None) into a Keras regularizer or None."""
    if regularizer_config is None:
        return None
    field = regularizer_config.DESCRIPTOR.fields_by_name["type"]
    kind = field.enum_type.values_by_number[regularizer_config.type].name
    return make_regularizer(kind, regularizer_config.weight)

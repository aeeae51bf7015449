"""TensorRT-style quantizers, quantize config and wrapper on top of TFMOT's Keras QAT classes.

Reference: tao_detectnet_v2.md §6 (TAO's QDQ: moving-average amax, decay 0.999 zero-debiased,
initial 6.0) and int8_calibration.md §0, §4 (symmetric INT8, per-channel weights). TFMOT's
``QuantizeWrapperV2`` / ``QuantizeLayer`` carry our ``Quantizer`` and ``QuantizeConfig``
subclasses instead of TFMOT's TFLite defaults (asymmetric uint8, rejected by TensorRT).
``QAT_CUSTOM_OBJECTS`` lists every class a QAT model file may contain.
"""

from tao_qat.common.tensorflow_setup import keras, tf  # noqa: I001 (sets TF_USE_LEGACY_KERAS)

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import (
    QuantizeLayer,  # TFMOT's input quantizer layer; not re-exported by its public API
)

from tao_qat.quantization import fake_quant

_Quantizer = tfmot.quantization.keras.quantizers.Quantizer


class SymmetricWeightQuantizer(_Quantizer):
    """Fake-quantizes a kernel with amax = max |w|, recomputed every step (no variables).

    Args:
        reduce_axes: kernel axes reduced to one amax per output channel, e.g. (0, 1, 2) for a
            Conv2D kernel [kh, kw, C_in, C_out]; None = one amax for the whole tensor.
    """

    def __init__(self, reduce_axes=None):
        self.reduce_axes = None if reduce_axes is None else tuple(int(a) for a in reduce_axes)

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return fake_quant.fake_quantize(inputs, fake_quant.weight_amax(inputs, self.reduce_axes))

    def get_config(self):
        return {"reduce_axes": None if self.reduce_axes is None else list(self.reduce_axes)}

    def __eq__(self, other):
        return isinstance(other, SymmetricWeightQuantizer) and self.reduce_axes == other.reduce_axes


class EmaActivationQuantizer(_Quantizer):
    """Per-tensor activation fake quantization with a moving-average amax (TAO's QDQ layer).

    Variables (non-trainable scalars, created on the owning layer): ``<name>_amax`` (init
    ``initial_amax``) and ``<name>_amax_weight`` (init 0, the weight of the observations
    averaged so far). Training: amax <- zero-debiased EMA of the batch max |x| (decay
    ``ema_decay``), then quantize with the updated amax. Inference: the stored amax.
    """

    def __init__(self, ema_decay=0.999, initial_amax=6.0):
        self.ema_decay = float(ema_decay)
        self.initial_amax = float(initial_amax)

    def build(self, tensor_shape, name, layer):
        def scalar(suffix, value):
            return layer.add_weight(
                f"{name}_{suffix}",
                shape=(),
                initializer=keras.initializers.Constant(value),
                trainable=False,
                synchronization=tf.VariableSynchronization.ON_READ,
                aggregation=tf.VariableAggregation.MEAN,
            )

        return {
            "amax": scalar("amax", self.initial_amax),
            "amax_weight": scalar("amax_weight", 0.0),
        }

    def __call__(self, inputs, training, weights, **kwargs):
        amax_var, weight_var = weights["amax"], weights["amax_weight"]
        if not training:
            return fake_quant.fake_quantize(inputs, amax_var.read_value())
        amax, weight = fake_quant.ema_update(
            amax_var.read_value(),
            weight_var.read_value(),
            fake_quant.batch_amax(inputs),
            self.ema_decay,
        )
        amax_var.assign(amax)
        weight_var.assign(weight)
        return fake_quant.fake_quantize(inputs, amax)

    def get_config(self):
        return {"ema_decay": self.ema_decay, "initial_amax": self.initial_amax}

    def __eq__(self, other):
        return isinstance(other, EmaActivationQuantizer) and self.get_config() == other.get_config()


class TrtQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """What one wrapped layer quantizes: a weight attribute and/or its output.

    Args:
        weight_attr: layer attribute holding the kernel to fake-quantize (``kernel``,
            ``depthwise_kernel``), or None.
        reduce_axes: kernel axes reduced per output channel; None = per-tensor weights.
        quantize_output: one EmaActivationQuantizer on the layer output.
        ema_decay, initial_amax: settings of that activation quantizer.
    """

    def __init__(
        self,
        weight_attr=None,
        reduce_axes=None,
        quantize_output=False,
        ema_decay=0.999,
        initial_amax=6.0,
    ):
        self.weight_attr = weight_attr
        self.reduce_axes = None if reduce_axes is None else tuple(int(a) for a in reduce_axes)
        self.quantize_output = bool(quantize_output)
        self.ema_decay = float(ema_decay)
        self.initial_amax = float(initial_amax)

    def get_weights_and_quantizers(self, layer):
        if not self.weight_attr:
            return []
        return [(getattr(layer, self.weight_attr), SymmetricWeightQuantizer(self.reduce_axes))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        if self.weight_attr:
            setattr(layer, self.weight_attr, quantize_weights[0])

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        if not self.quantize_output:
            return []
        return [EmaActivationQuantizer(self.ema_decay, self.initial_amax)]

    def get_config(self):
        return {
            "weight_attr": self.weight_attr,
            "reduce_axes": None if self.reduce_axes is None else list(self.reduce_axes),
            "quantize_output": self.quantize_output,
            "ema_decay": self.ema_decay,
            "initial_amax": self.initial_amax,
        }

    def __eq__(self, other):
        return isinstance(other, TrtQuantizeConfig) and self.get_config() == other.get_config()


class TrtQuantizeWrapper(tfmot.quantization.keras.QuantizeWrapperV2):
    """TFMOT's QuantizeWrapperV2 that keeps a frozen layer frozen.

    QuantizeWrapperV2 lists the quantized kernel among its trainable weights even when the
    wrapped layer has ``trainable=False`` (``freeze_blocks``); here a non-trainable wrapper
    reports every weight as non-trainable, in the same order.
    """

    @property
    def trainable_weights(self):
        return super().trainable_weights if self.trainable else []

    @property
    def non_trainable_weights(self):
        if self.trainable:
            return super().non_trainable_weights
        every = self._trainable_weights + self.layer.weights + self._non_trainable_weights
        return self._dedup_weights(every)

    def weight_quantizers(self):
        """[(kernel variable, SymmetricWeightQuantizer)] of this layer (empty if none)."""
        return [(weight, quantizer) for weight, quantizer, _ in self._weight_vars]

    def output_quantizer_variables(self):
        """{"amax", "amax_weight"} variables of the output quantizer, or None."""
        return self._output_quantizer_vars if self._output_quantizers else None


def input_quantizer_variables(layer):
    """{"amax", "amax_weight"} variables of a QuantizeLayer's quantizer, or None."""
    return layer.quantizer_vars if isinstance(layer.quantizer, EmaActivationQuantizer) else None


# Every class a QAT model file may contain beyond Keras and ``modeling.layers.CUSTOM_OBJECTS``.
QAT_CUSTOM_OBJECTS = {
    "TrtQuantizeWrapper": TrtQuantizeWrapper,
    "QuantizeLayer": QuantizeLayer,
    "TrtQuantizeConfig": TrtQuantizeConfig,
    "SymmetricWeightQuantizer": SymmetricWeightQuantizer,
    "EmaActivationQuantizer": EmaActivationQuantizer,
}

"""What pruning does with each Keras layer type, as data (tao_detectnet_v2.md §7).

Every layer of a model to prune must have a row in one of these tables, keyed by the Keras
class name stored in the model config; anything else is refused naming the layer. Adding a
layer type (e.g. the QAT fake-quant layer) is one row, or ``DEFAULT_RULES.extended(...)``:

- ``PRUNABLE``: layers whose output filters are ranked and sliced (``kernel`` on its last
  axis, ``bias`` on axis 0, the kernel's input axis -2 follows the upstream pruning; any other
  weight, e.g. a scalar quantizer range, is copied).
- ``PASS_THROUGH``: one input, output channel c depends only on input channel c. The value
  says what happens to the layer's weights: ``NO_WEIGHTS`` (none, or only scalars: copied)
  or ``CHANNEL_WEIGHTS`` (every weight is per channel on its last axis: sliced, e.g. BN).
- ``ELEMENTWISE``: several inputs combined channel by channel; the convolutions producing
  them must keep the same channel indices (equalization groups).
- ``INPUTS``: the network input (never pruned).
"""

import dataclasses

from tao_qat.common.errors import DataError

NO_WEIGHTS = "no_weights"
CHANNEL_WEIGHTS = "channel_weights"

PRUNABLE = frozenset({"Conv2D"})

PASS_THROUGH = {
    "BatchNormalization": CHANNEL_WEIGHTS,
    "FrozenBatchNormalization": CHANNEL_WEIGHTS,
    "Activation": NO_WEIGHTS,
    "ReLU": NO_WEIGHTS,
    "LeakyReLU": NO_WEIGHTS,
    "ELU": NO_WEIGHTS,
    "PReLU": CHANNEL_WEIGHTS,
    "ZeroPadding2D": NO_WEIGHTS,
    "Cropping2D": NO_WEIGHTS,
    "MaxPooling2D": NO_WEIGHTS,
    "AveragePooling2D": NO_WEIGHTS,
    "UpSampling2D": NO_WEIGHTS,
    "Dropout": NO_WEIGHTS,
    "SpatialDropout2D": NO_WEIGHTS,
    # TAO's per-tensor fake-quant layer (one scalar scaling factor).
    "QDQ": NO_WEIGHTS,
}

ELEMENTWISE = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})

INPUTS = frozenset({"InputLayer"})

# Activation functions that mix channels: an Activation layer using them is not a pass-through.
CHANNEL_MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})

PRUNABLE_KIND = "prunable"
PASS_KIND = "pass_through"
ELEMENTWISE_KIND = "elementwise"
INPUT_KIND = "input"


class UnprunableModelError(DataError):
    """The model holds a layer or a connection pruning cannot handle (message names it)."""


def _channels_last(config):
    return config.get("data_format") in ("channels_last", None)


def _on_last_axis(config):
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return axis in (-1, 3)


@dataclasses.dataclass(frozen=True)
class LayerRules:
    """The tables above as one object; ``extended`` returns a copy with more rows."""

    prunable: frozenset = PRUNABLE
    pass_through: dict = dataclasses.field(default_factory=lambda: dict(PASS_THROUGH))
    elementwise: frozenset = ELEMENTWISE
    inputs: frozenset = INPUTS

    def extended(self, *, prunable=(), pass_through=None):
        """Copy with extra prunable class names and {class name: weight policy} rows."""
        return dataclasses.replace(
            self,
            prunable=self.prunable | frozenset(prunable),
            pass_through={**self.pass_through, **(pass_through or {})},
        )

    def known(self):
        """Sorted class names these rules handle."""
        names = self.prunable | set(self.pass_through) | self.elementwise | self.inputs
        return sorted(names)

    def weight_policy(self, class_name):
        """NO_WEIGHTS or CHANNEL_WEIGHTS of a pass-through class."""
        return self.pass_through[class_name]

    def classify(self, name, class_name, config):
        """Return the kind of a layer (PRUNABLE_KIND, PASS_KIND, ELEMENTWISE_KIND, INPUT_KIND).

        Args:
            name: layer name; class_name: Keras class name; config: the layer's config dict.

        Raises:
            UnprunableModelError naming the layer: unknown type, or a configuration that breaks
            the channels-last, one-output-channel-per-filter assumptions.
        """
        if class_name in self.prunable:
            if config.get("groups", 1) != 1:
                raise UnprunableModelError(
                    f"layer {name!r} ({class_name}) is a grouped convolution "
                    f"(groups={config['groups']}); pruning cannot slice it"
                )
            kind = PRUNABLE_KIND
        elif class_name in self.pass_through:
            activation = config.get("activation") if class_name == "Activation" else None
            if activation in CHANNEL_MIXING_ACTIVATIONS:
                raise UnprunableModelError(
                    f"layer {name!r} applies {activation}, which mixes channels; "
                    "pruning cannot handle it"
                )
            if "axis" in config and not _on_last_axis(config):
                raise UnprunableModelError(
                    f"layer {name!r} ({class_name}) works on axis {config['axis']}; pruning "
                    "needs the channel axis -1"
                )
            kind = PASS_KIND
        elif class_name in self.elementwise:
            kind = ELEMENTWISE_KIND
        elif class_name in self.inputs:
            kind = INPUT_KIND
        else:
            raise UnprunableModelError(
                f"layer {name!r} has type {class_name}, which pruning does not support "
                f"(known types: {', '.join(self.known())})"
            )
        if not _channels_last(config):
            raise UnprunableModelError(
                f"layer {name!r} ({class_name}) is {config.get('data_format')}; pruning needs "
                "channels_last"
            )
        return kind


DEFAULT_RULES = LayerRules()

"""Optimizer, cost (loss) scaling and mixed precision from the spec (reference §1.5, §3.6).

- ``training_config.optimizer.adam`` -> ``keras.optimizers.Adam(schedule, beta_1, beta_2,
  epsilon)``; same update rule as TAO's ``tf.train.AdamOptimizer`` (epsilon added to sqrt(v)).
- ``training_config.cost_scaling`` (enabled) -> ``keras.mixed_precision.LossScaleOptimizer``
  with dynamic loss scaling: ``initial_scale = 2**initial_exponent`` and the scale doubled after
  ``round(1 / increment)`` consecutive finite steps, halved on a non-finite step. TAO's own rule
  (exponent E += increment per finite step, E -= decrement otherwise) doubles the scale after
  1/increment finite steps too, so the growth rate and the shipped specs' ``decrement: 1.0``
  (halve) are reproduced; differences (documented in docs/training.md): the scale only moves in
  powers of two, never drops below 1, the growth counter restarts after an overflow, and an
  overflowing step is skipped instead of applying zero gradients (TAO's zero-gradient step still
  moves the weights through Adam's momentum). Keras's optimizer is chosen because it already
  agrees on skipping across replicas and workers and works inside ``model.fit``.
- ``model_config.training_precision.backend_floatx`` FLOAT16 -> the ``mixed_float16`` Keras
  policy (float16 compute, float32 variables) instead of TAO's global float16 floatx. On CPU
  float16 is emulated and several times slower than float32: use it on GPUs only.
"""

import contextlib
import logging
import math
from dataclasses import dataclass

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras, tf

logger = logging.getLogger(__name__)

__all__ = [
    "AdamSettings",
    "CostScaling",
    "build_optimizer",
    "current_learning_rate",
    "inner_optimizer",
    "mixed_precision",
    "use_mixed_precision",
]

_NEVER_GROW_STEPS = 2**31 - 1


@dataclass(frozen=True)
class AdamSettings:
    """Adam hyper-parameters: epsilon > 0, 0 <= beta1, beta2 < 1."""

    epsilon: float = 1e-8
    beta1: float = 0.9
    beta2: float = 0.999

    @classmethod
    def from_spec(cls, adam_config, path="training_config.optimizer.adam"):
        """From an ``AdamOptimizerConfig`` message; SpecError naming the field if invalid."""
        if not adam_config.epsilon > 0:
            raise SpecError(f"{path}.epsilon: must be > 0, got {adam_config.epsilon}")
        for name in ("beta1", "beta2"):
            value = getattr(adam_config, name)
            if not 0.0 <= value < 1.0:
                raise SpecError(f"{path}.{name}: must be in [0, 1), got {value}")
        return cls(adam_config.epsilon, adam_config.beta1, adam_config.beta2)

    def build(self, learning_rate):
        """A tf_keras Adam. ``learning_rate``: a LearningRateSchedule (or a float)."""
        return keras.optimizers.Adam(
            learning_rate=learning_rate, beta_1=self.beta1, beta_2=self.beta2, epsilon=self.epsilon
        )


@dataclass(frozen=True)
class CostScaling:
    """TAO's dynamic cost scaling parameters, mapped onto Keras dynamic loss scaling.

    Args:
        enabled: wrap the optimizer in a LossScaleOptimizer.
        initial_exponent: initial scale is 2**initial_exponent.
        increment: exponent added per finite step (the scale doubles every 1/increment steps).
        decrement: exponent removed per overflow (Keras always halves, i.e. decrement 1).
    """

    enabled: bool = False
    initial_exponent: float = 20.0
    increment: float = 0.005
    decrement: float = 1.0

    @classmethod
    def from_spec(cls, cost_scaling_config, path="training_config.cost_scaling"):
        """From a ``CostScalingConfig`` message. Like TAO, increment/decrement must be >= 0."""
        for name in ("increment", "decrement"):
            value = getattr(cost_scaling_config, name)
            if value < 0:
                raise SpecError(f"{path}.{name}: must be >= 0, got {value}")
        return cls(
            cost_scaling_config.enabled,
            cost_scaling_config.initial_exponent,
            cost_scaling_config.increment,
            cost_scaling_config.decrement,
        )

    @property
    def initial_scale(self):
        """2**initial_exponent (float)."""
        return float(2.0**self.initial_exponent)

    @property
    def growth_steps(self):
        """Consecutive finite steps between doublings: round(1 / increment), at least 1."""
        if self.increment <= 0:
            return _NEVER_GROW_STEPS
        return min(max(1, round(1.0 / self.increment)), _NEVER_GROW_STEPS)

    def wrap(self, optimizer):
        """Return ``optimizer`` wrapped in a dynamic LossScaleOptimizer (or itself if disabled).

        ``model.fit`` scales the loss and unscales the gradients itself; a custom loop must call
        ``get_scaled_loss`` / ``get_unscaled_gradients`` on the wrapper.
        """
        if not self.enabled:
            return optimizer
        if not math.isclose(self.decrement, 1.0):
            logger.warning(
                "cost_scaling.decrement %g: the loss scale is halved on overflow (decrement 1.0)",
                self.decrement,
            )
        exponent = math.log2(self.growth_steps * self.increment) if self.increment > 0 else 0
        if abs(exponent) > 0.05:
            logger.warning(
                "cost_scaling.increment %g: the loss scale doubles every %d finite steps",
                self.increment,
                self.growth_steps,
            )
        return keras.mixed_precision.LossScaleOptimizer(
            optimizer,
            dynamic=True,
            initial_scale=self.initial_scale,
            dynamic_growth_steps=self.growth_steps,
        )


def build_optimizer(optimizer_config, cost_scaling_config, learning_rate):
    """Build the training optimizer from ``training_config.optimizer`` / ``.cost_scaling``.

    Args:
        optimizer_config: ``OptimizerConfig`` message (oneof: ``adam``).
        cost_scaling_config: ``CostScalingConfig`` message, or None for no cost scaling.
        learning_rate: a ``LearningRateSchedule`` (see ``schedules``), or a float.
    Returns:
        a ``keras.optimizers.Adam``, wrapped in a LossScaleOptimizer if cost scaling is enabled.
        Create it inside ``strategy.scope()`` when training with a distribution strategy.
    """
    builders = {"adam": lambda c: AdamSettings.from_spec(c).build(learning_rate)}
    which = optimizer_config.WhichOneof("optimizer")
    if which not in builders:
        raise SpecError(f"training_config.optimizer: set one of {', '.join(builders)}")
    optimizer = builders[which](getattr(optimizer_config, which))
    if cost_scaling_config is None:
        return optimizer
    cost_scaling = CostScaling.from_spec(cost_scaling_config)
    if keras.mixed_precision.global_policy().compute_dtype == "float16" and not (
        cost_scaling.enabled
    ):
        logger.warning("cost scaling is disabled while mixed-precision training is enabled")
    return cost_scaling.wrap(optimizer)


def inner_optimizer(optimizer):
    """The optimizer under any LossScaleOptimizer wrapper."""
    while isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer


def current_learning_rate(optimizer):
    """Learning rate (float) used by the latest update: schedule(iterations - 1), or
    schedule(0) before the first update; the plain value for a constant rate."""
    base = inner_optimizer(optimizer)
    schedule = base._learning_rate  # the schedule object itself (``learning_rate`` is its value)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(int(base.iterations.numpy()) - 1, 0)
        return float(schedule(step))
    return float(tf.convert_to_tensor(base.learning_rate))


def use_mixed_precision(model_config):
    """True if ``model_config.training_precision.backend_floatx`` is FLOAT16 (INVALID: error)."""
    floatx = model_config.training_precision.backend_floatx
    enum = model_config.training_precision.DESCRIPTOR.fields_by_name["backend_floatx"].enum_type
    name = enum.values_by_number[floatx].name if floatx in enum.values_by_number else str(floatx)
    if name not in ("FLOAT32", "FLOAT16"):
        raise SpecError(
            f"model_config.training_precision.backend_floatx: must be FLOAT32 or "
            f"FLOAT16, got {name}"
        )
    return name == "FLOAT16"


@contextlib.contextmanager
def mixed_precision(enabled=True):
    """Set the ``mixed_float16`` Keras policy inside the block, restore the previous one after.

    Build the model inside the block (layers read the policy when they are created). Heads
    should produce float32 (``dtype="float32"`` on the output layers or a cast before the cost).
    """
    previous = keras.mixed_precision.global_policy()
    if enabled:
        if not tf.config.list_physical_devices("GPU"):
            logger.warning("mixed precision on CPU: float16 is emulated and slower than float32")
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)

"""Learning-rate schedules of TAO DetectNet_v2 (reference §1.5): soft-start annealing and
early-stopping annealing, as Keras ``LearningRateSchedule`` objects.

Both move the rate log-linearly between ``min_lr`` and ``max_lr``:
``lr = exp(ln(min_lr) + t * (ln(max_lr) - ln(min_lr)))`` with a ramp factor ``t`` in [0, 1].

- Soft-start annealing: progress ``p = step / total_steps`` (clamped to [0, 1]);
  ``t = p / soft_start`` while ``p < soft_start``, ``t = (1 - p) / (1 - annealing)`` once
  ``p > annealing``, else 1 (soft_start 0: start at max; annealing 1: never anneal).
- Early-stopping annealing: ``t`` ramps up over ``soft_start_steps`` from the start, holds at 1,
  and ramps down over ``annealing_steps`` from the step where ``EarlyStoppingController``
  decided (from validation costs) to anneal; the controller then requests the stop.

Pass the schedule itself to the optimizer (``Adam(learning_rate=schedule)``): the optimizer
evaluates it at ``optimizer.iterations`` on every update. Never hand a ``tf.Variable`` to Adam and
assign it later (trials.md: the optimizer copies it, the assignment is silently ignored).
"""

import logging
import math

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras, tf

logger = logging.getLogger(__name__)

__all__ = [
    "EarlyStoppingAnnealingSchedule",
    "EarlyStoppingController",
    "SoftStartAnnealingSchedule",
    "CUSTOM_OBJECTS",
    "build_learning_rate_schedule",
    "log_linear_lr",
    "soft_start_annealing_factor",
]

_PATH = "training_config.learning_rate"


def log_linear_lr(t, min_lr, max_lr):
    """Learning rate at ramp factor ``t`` in [0, 1]: log-linear between min_lr and max_lr."""
    return math.exp(math.log(min_lr) + t * (math.log(max_lr) - math.log(min_lr)))


def soft_start_annealing_factor(progress, soft_start, annealing):
    """Ramp factor ``t`` of the soft-start annealing schedule at ``progress`` (pure Python).

    Args:
        progress: fraction of training done, clamped to [0, 1].
        soft_start, annealing: fractions of training, 0 <= soft_start <= annealing <= 1.
    """
    progress = min(max(progress, 0.0), 1.0)
    if progress < soft_start:
        return progress / soft_start
    if progress > annealing:
        return (1.0 - progress) / (1.0 - annealing)
    return 1.0


def _log_linear(t, min_lr, max_lr):
    """TF version of ``log_linear_lr`` (float64 inside, float32 out)."""
    log_min = math.log(min_lr)
    return tf.cast(tf.exp(log_min + t * (math.log(max_lr) - log_min)), tf.float32)


class SoftStartAnnealingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """TAO's soft-start annealing schedule over ``total_steps`` optimizer steps.

    Args:
        min_lr, max_lr: learning rates (> 0) at the ends and in the middle of training.
        soft_start: fraction of training (in [0, 1]) at which the rate reaches max_lr.
        annealing: fraction of training (soft_start <= annealing <= 1) after which the rate
            falls back to min_lr (reached at the last step).
        total_steps: steps_per_epoch * num_epochs (> 0).
    """

    def __init__(self, min_lr, max_lr, soft_start, annealing, total_steps):
        super().__init__()
        if not (min_lr > 0 and max_lr > 0):
            raise ValueError(f"min_lr and max_lr must be > 0, got {min_lr}, {max_lr}")
        if not 0.0 <= soft_start <= annealing <= 1.0:
            raise ValueError(
                f"need 0 <= soft_start <= annealing <= 1, got {soft_start}, {annealing}"
            )
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.soft_start = float(soft_start)
        self.annealing = float(annealing)
        self.total_steps = int(total_steps)

    @classmethod
    def from_spec(cls, schedule_config, total_steps):
        """Build from a ``SoftStartAnnealingScheduleConfig`` message (validated, SpecError)."""
        path = f"{_PATH}.soft_start_annealing_schedule"
        _check_rates(schedule_config, path)
        soft_start, annealing = schedule_config.soft_start, schedule_config.annealing
        if not 0.0 <= soft_start <= 1.0:
            raise SpecError(f"{path}.soft_start: must be in [0, 1], got {soft_start}")
        if not 0.0 <= annealing <= 1.0:
            raise SpecError(f"{path}.annealing: must be in [0, 1], got {annealing}")
        if soft_start > annealing:
            raise SpecError(
                f"{path}.soft_start: must be <= annealing ({annealing}), got {soft_start}"
            )
        return cls(
            schedule_config.min_learning_rate,
            schedule_config.max_learning_rate,
            soft_start,
            annealing,
            total_steps,
        )

    def value_at(self, step):
        """Learning rate at ``step`` as a Python float (reference for tests and logs)."""
        t = soft_start_annealing_factor(step / self.total_steps, self.soft_start, self.annealing)
        return log_linear_lr(t, self.min_lr, self.max_lr)

    def __call__(self, step):
        with tf.name_scope("soft_start_annealing"):
            progress = tf.cast(step, tf.float64) / float(self.total_steps)
            progress = tf.clip_by_value(progress, 0.0, 1.0)
            one = tf.constant(1.0, tf.float64)
            t_soft = progress / self.soft_start if self.soft_start > 0 else one
            t_anneal = (1.0 - progress) / (1.0 - self.annealing) if self.annealing < 1 else one
            t = tf.where(progress < self.soft_start, t_soft, one)
            t = tf.where(progress > self.annealing, t_anneal, t)
            return _log_linear(t, self.min_lr, self.max_lr)

    def get_config(self):
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "soft_start": self.soft_start,
            "annealing": self.annealing,
            "total_steps": self.total_steps,
        }


class EarlyStoppingController(tf.Module):
    """State machine of the early-stopping annealing schedule, fed with validation costs.

    Phases: soft start (ramp to max_lr over soft_start_steps, then hold) -> annealing (ramp
    down to min_lr over annealing_steps, then hold) -> stop. Feed it every validation cost with
    ``observe``; it mirrors TAO's ``LRAnnealingEarlyStoppingHook``:

    - cost lower than the best so far: new best (``"improved"``);
    - else, if ``epoch - best_epoch >= patience_epochs``:
      in the soft-start phase -> start annealing now (phase start = current step, the current
      cost becomes the best) (``"annealing_started"``); in the annealing phase and more than
      annealing_steps into it -> request the stop (``"stop"``); otherwise ``"waiting"``;
    - else ``"waiting"``.

    The state lives in TF variables (read by the schedule inside compiled train steps and saved
    by ``tf.train.Checkpoint``: put the controller in the checkpoint's objects). In multi-worker
    training feed the same cost on every worker so the replicas stay in step.

    Args:
        patience_epochs: epochs without improvement tolerated (TAO ``patience_steps``).
        annealing_steps: length of the annealing ramp in optimizer steps (used for the stop rule).
    """

    def __init__(self, patience_epochs, annealing_steps, name="early_stopping"):
        super().__init__(name=name)
        self.patience_epochs = int(patience_epochs)
        self.annealing_steps = int(annealing_steps)
        self.phase_start_step = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="phase_start_step"
        )
        self.in_annealing = tf.Variable(False, trainable=False, name="in_annealing")
        self.should_stop = tf.Variable(False, trainable=False, name="should_stop")
        self.best_cost = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best_cost")
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")

    def observe(self, epoch, validation_cost, step):
        """Update the state with the validation cost measured after ``epoch``.

        Args:
            epoch: completed epochs (1-based) when the cost was measured.
            validation_cost: mean validation cost (float).
            step: optimizer iterations so far (``int(optimizer.iterations)``).
        Returns:
            one of ``"improved"``, ``"waiting"``, ``"annealing_started"``, ``"stop"``.
        """
        best_epoch = int(self.best_epoch.numpy())
        if best_epoch < 0 or validation_cost < float(self.best_cost.numpy()):
            self._set_best(validation_cost, epoch)
            logger.info(
                "early stopping: new best validation cost %g at epoch %d", validation_cost, epoch
            )
            return "improved"
        if epoch - best_epoch < self.patience_epochs:
            return "waiting"
        in_annealing = bool(self.in_annealing.numpy())
        phase_step = int(step) - int(self.phase_start_step.numpy())
        if in_annealing and phase_step > self.annealing_steps:
            self.should_stop.assign(True)
            logger.info(
                "early stopping: no improvement for %d epochs after annealing; stop",
                epoch - best_epoch,
            )
            return "stop"
        if not in_annealing:
            self.in_annealing.assign(True)
            self.phase_start_step.assign(int(step))
            self._set_best(validation_cost, epoch)
            logger.info(
                "early stopping: no improvement for %d epochs; annealing from step %d",
                epoch - best_epoch,
                step,
            )
            return "annealing_started"
        return "waiting"

    def _set_best(self, cost, epoch):
        self.best_cost.assign(float(cost))
        self.best_epoch.assign(int(epoch))


class EarlyStoppingAnnealingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """TAO's early-stopping annealing schedule; the phase comes from ``self.controller``.

    ``t = min(phase_step / soft_start_steps, 1)`` before annealing (1 if soft_start_steps is 0);
    ``t = max(1 - phase_step / annealing_steps, 0)`` once annealing (1 if annealing_steps is 0:
    never annealed), with ``phase_step = step - controller.phase_start_step``.

    Args:
        min_lr, max_lr: learning rates (> 0).
        soft_start_steps, annealing_steps: ramp lengths in optimizer steps (>= 0), i.e.
            soft_start_epochs * steps_per_epoch and annealing_epochs * steps_per_epoch.
        patience_epochs: epochs without validation improvement tolerated (>= 1).
        controller: an ``EarlyStoppingController`` (a new one by default).
    """

    def __init__(
        self, min_lr, max_lr, soft_start_steps, annealing_steps, patience_epochs, controller=None
    ):
        super().__init__()
        if not (min_lr > 0 and max_lr > 0):
            raise ValueError(f"min_lr and max_lr must be > 0, got {min_lr}, {max_lr}")
        if soft_start_steps < 0 or annealing_steps < 0:
            raise ValueError("soft_start_steps and annealing_steps must be >= 0")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.soft_start_steps = int(soft_start_steps)
        self.annealing_steps = int(annealing_steps)
        self.patience_epochs = int(patience_epochs)
        self.controller = controller or EarlyStoppingController(patience_epochs, annealing_steps)

    @classmethod
    def from_spec(cls, schedule_config, steps_per_epoch, num_epochs=None, validation_period=None):
        """Build from an ``EarlyStoppingAnnealingScheduleConfig`` (validated, SpecError).

        ``num_epochs`` and ``validation_period`` (evaluation_config
        .validation_period_during_training), when given, enable TAO's cross-checks
        validation_period <= patience_steps <= num_epochs.
        """
        path = f"{_PATH}.early_stopping_annealing_schedule"
        _check_rates(schedule_config, path)
        patience = schedule_config.patience_steps
        if patience < 1:
            raise SpecError(f"{path}.patience_steps: must be >= 1, got {patience}")
        if validation_period is not None and validation_period > patience:
            raise SpecError(
                f"{path}.patience_steps: must be >= evaluation_config."
                f"validation_period_during_training ({validation_period}), "
                f"got {patience}"
            )
        if num_epochs is not None and patience > num_epochs:
            raise SpecError(
                f"{path}.patience_steps: must be <= training_config.num_epochs "
                f"({num_epochs}), got {patience}"
            )
        return cls(
            schedule_config.min_learning_rate,
            schedule_config.max_learning_rate,
            schedule_config.soft_start_epochs * steps_per_epoch,
            schedule_config.annealing_epochs * steps_per_epoch,
            patience,
        )

    def value_at(self, step):
        """Learning rate at ``step`` for the controller's current phase (Python float)."""
        phase_step = step - int(self.controller.phase_start_step.numpy())
        if bool(self.controller.in_annealing.numpy()):
            t = max(1.0 - phase_step / self.annealing_steps, 0.0) if self.annealing_steps else 1.0
        else:
            t = min(phase_step / self.soft_start_steps, 1.0) if self.soft_start_steps else 1.0
        return log_linear_lr(t, self.min_lr, self.max_lr)

    def __call__(self, step):
        with tf.name_scope("early_stopping_annealing"):
            step = tf.cast(step, tf.int64)
            phase_step = tf.cast(step - self.controller.phase_start_step, tf.float64)
            one = tf.constant(1.0, tf.float64)
            t_soft = (
                tf.minimum(phase_step / self.soft_start_steps, 1.0)
                if self.soft_start_steps
                else one
            )
            t_anneal = (
                tf.maximum(1.0 - phase_step / self.annealing_steps, 0.0)
                if self.annealing_steps
                else one
            )
            t = tf.where(self.controller.in_annealing, t_anneal, t_soft)
            return _log_linear(t, self.min_lr, self.max_lr)

    def get_config(self):
        """Numbers only: a schedule rebuilt from its config starts with a fresh controller."""
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "soft_start_steps": self.soft_start_steps,
            "annealing_steps": self.annealing_steps,
            "patience_epochs": self.patience_epochs,
        }


# For keras.optimizers.schedules.deserialize(config, custom_objects=CUSTOM_OBJECTS).
CUSTOM_OBJECTS = {
    "SoftStartAnnealingSchedule": SoftStartAnnealingSchedule,
    "EarlyStoppingAnnealingSchedule": EarlyStoppingAnnealingSchedule,
}


def build_learning_rate_schedule(
    learning_rate_config, steps_per_epoch, num_epochs, validation_period=None
):
    """Build the schedule selected by a ``LearningRateConfig``'s oneof.

    Args:
        learning_rate_config: ``training_config.learning_rate`` message.
        steps_per_epoch: optimizer steps per epoch (global batches, §3.6).
        num_epochs: ``training_config.num_epochs``.
        validation_period: evaluation_config.validation_period_during_training (early stopping
            cross-check; optional).
    Returns:
        ``SoftStartAnnealingSchedule`` or ``EarlyStoppingAnnealingSchedule`` (whose
        ``controller`` the trainer feeds with validation costs and checkpoints).
    """
    which = learning_rate_config.WhichOneof("learning_rate")
    builders = {
        "soft_start_annealing_schedule": lambda c: SoftStartAnnealingSchedule.from_spec(
            c, steps_per_epoch * num_epochs
        ),
        "early_stopping_annealing_schedule": lambda c: EarlyStoppingAnnealingSchedule.from_spec(
            c, steps_per_epoch, num_epochs, validation_period
        ),
    }
    if which not in builders:
        raise SpecError(f"{_PATH}: set one of {', '.join(builders)}")
    return builders[which](getattr(learning_rate_config, which))


def _check_rates(schedule_config, path):
    for name in ("min_learning_rate", "max_learning_rate"):
        value = getattr(schedule_config, name)
        if not value > 0:
            raise SpecError(f"{path}.{name}: must be > 0, got {value}")

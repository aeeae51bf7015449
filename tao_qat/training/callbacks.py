"""Keras callbacks of ``qat train``: auto-weighting, validation, divergence guard, status.

Order matters at epoch end (Keras calls callbacks in list order): progress -> divergence guard
-> auto-weighting -> validation (AP, cost, early stopping) -> status -> checkpoint, so a
diverged model is never saved, the checkpoint holds the updated objective weights and
early-stopping state, and the status line carries the validation results. With dynamic loss
scaling (``training_config.cost_scaling``), steps skipped for non-finite gradients are counted
per epoch (``LossScaleTracker``), not fatal.
"""

import logging
import math
import time

import numpy as np

from tao_qat.common.errors import QatError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.evaluation.report import format_table
from tao_qat.inference.predictor import KerasPredictor
from tao_qat.training.checkpoints import find_latest_checkpoint
from tao_qat.training.optimizer import current_learning_rate
from tao_qat.training.status import epoch_record

logger = logging.getLogger(__name__)


class TrainingDiverged(QatError):
    """The training loss became NaN or infinite."""


class AutoWeightingCallback(keras.callbacks.Callback):
    """At epoch end, update the cost's objective weights from the epoch's component costs
    (TAO §3.5; a no-op unless ``enable_autoweighting``)."""

    def __init__(self, cost):
        super().__init__()
        self.cost = cost

    def on_epoch_end(self, epoch, logs=None):
        self.cost.update_objective_weights(self.model.component_costs.result().numpy())


class DivergenceGuard(keras.callbacks.Callback):
    """Stop with one line naming the epoch and step when training diverges.

    Checks the loss of every step and, at epoch end, that every float weight is finite (a
    step whose loss is still finite can write NaN or infinite weights). Place it before the
    checkpoint callback: the epoch end check then runs before the save, so a diverged model is
    never written under a final name. The message names the newest complete checkpoint, kept.

    The step losses arrive as tensors (``_supports_tf_logs``) and are read in groups, every
    ``check_steps`` steps and at epoch end, instead of one host sync per step; the message still
    names the first step whose loss is not finite, and training stops at most ``check_steps``
    - 1 steps after it (1 = read every step). A step count, not a time, so that every worker
    of a multi-worker run stops after the same step.
    """

    def __init__(self, results_dir, check_steps=10):
        super().__init__()
        self._supports_tf_logs = True
        self.results_dir = results_dir
        self.check_steps = max(int(check_steps), 1)
        self.epoch = 0
        self.steps = None
        self._pending = []  # (step, loss tensor or number) not read yet

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1
        self._pending = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps = batch + 1
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        self._pending.append((batch + 1, loss))
        if len(self._pending) >= self.check_steps:
            self._check_losses()

    def on_epoch_end(self, epoch, logs=None):
        self._check_losses()
        name = first_non_finite_weight(self.model)
        if name is not None:
            where = f"end (step {self.steps})" if self.steps else "end"
            raise TrainingDiverged(self._message(where, f"weight {name} is not finite"))

    def _check_losses(self):
        """Raise TrainingDiverged at the first pending step whose loss is not finite."""
        pending, self._pending = self._pending, []
        for step, loss in pending:
            value = float(loss)
            if not math.isfinite(value):
                raise TrainingDiverged(self._message(f"step {step}", f"the loss is {value}"))

    def _message(self, where, what):
        latest = find_latest_checkpoint(self.results_dir) if self.results_dir else None
        kept = (
            f"the checkpoint of epoch {latest.epoch} ({latest.path}) is kept"
            if latest is not None
            else "no checkpoint was written before"
        )
        return (
            f"training diverged at epoch {self.epoch}, {where}: {what}; {kept} (lower the "
            "learning rate or check the data)"
        )


def first_non_finite_weight(model):
    """Name of the first float weight of ``model`` holding a NaN or infinity, or None."""
    weights = [w for w in model.weights if w.dtype.is_floating]
    if not weights:
        return None
    finite = [tf.reduce_all(tf.math.is_finite(w)) for w in weights]
    if bool(tf.reduce_all(tf.stack(finite)).numpy()):
        return None
    return next(w.name for w, ok in zip(weights, finite, strict=True) if not bool(ok.numpy()))


def skipped_steps(prev_scale, prev_counter, scale, counter, steps):
    """Steps skipped for non-finite gradients among ``steps`` consecutive optimizer steps that
    took Keras's dynamic loss scale state from (prev_scale, prev_counter) to (scale, counter).

    A finite step adds 1 to the counter, or doubles the scale and resets the counter after
    ``growth_steps`` finite steps; a skipped step halves the scale (never below 1) and resets
    the counter. Exact for ``steps == 1``; a lower bound when several steps run between two
    observations (``steps_per_execution`` > 1).
    """
    if steps <= 0 or (scale == prev_scale and counter == prev_counter + steps):
        return 0
    if scale > prev_scale:
        return 0
    if scale < prev_scale:
        return max(1, round(math.log2(prev_scale / scale)))
    return 1  # same scale, counter reset: skipped at the floor scale 1


class LossScaleTracker:
    """Counts the steps a dynamic ``LossScaleOptimizer`` skipped, observed after each batch.

    Args:
        optimizer: the training optimizer; ``LossScaleTracker.for_optimizer`` returns None when
            it does not use dynamic loss scaling.
    Attributes:
        epoch_skipped, total_skipped: skipped steps in the current epoch / since training began.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.scale, self.counter = self._state()
        self.epoch_skipped = 0
        self.total_skipped = 0

    @classmethod
    def for_optimizer(cls, optimizer):
        dynamic = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) and getattr(
            optimizer, "dynamic", False
        )
        return cls(optimizer) if dynamic else None

    def _state(self):
        scale = float(tf.convert_to_tensor(self.optimizer.loss_scale).numpy())
        return scale, int(self.optimizer.dynamic_counter.numpy())

    def start_epoch(self):
        self.epoch_skipped = 0
        self.scale, self.counter = self._state()

    def observe(self, steps):
        """Read the state after ``steps`` more optimizer steps; return the steps skipped."""
        scale, counter = self._state()
        skipped = skipped_steps(self.scale, self.counter, scale, counter, steps)
        self.scale, self.counter = scale, counter
        self.epoch_skipped += skipped
        self.total_skipped += skipped
        return skipped


class ValidationCallback(keras.callbacks.Callback):
    """Evaluate the detector on the validation set at the given (1-based) epochs.

    One pass over the validation batches gives the AP table (printed; the EvaluationResult in
    ``self.results[epoch]``) and, when ``task_cost`` is given, TAO's "Validation cost": the
    mean of the batch task costs (printed; ``self.costs[epoch]``). The cost feeds the
    early-stopping controller when there is one; a stop decision sets ``model.stop_training``
    (Keras finishes this epoch's callbacks, status and checkpoint, then ends ``fit``).

    Args:
        detector: the functional model being trained.
        scorer: ``inference.detect.DetectionScorer``.
        dataset: validation tf.data.Dataset (no augmentation, not repeated); its batches carry
            ``targets`` when ``task_cost`` is given.
        epochs: iterable of 1-based epochs to validate after.
        task_cost: ``DetectNetTrainModel.task_cost`` or None (no cost).
        controller: ``schedules.EarlyStoppingController`` or None.
        echo: function printing one string (the table).
    Attributes:
        results, costs: per validated epoch; stopped_at: epoch of the stop decision or None.
    """

    def __init__(self, detector, scorer, dataset, epochs, task_cost=None, controller=None,
                 echo=print):
        super().__init__()
        self.detector = detector
        self.scorer = scorer
        self.dataset = dataset
        self.epochs = set(epochs)
        self.controller = controller
        self.echo = echo
        self.results = {}
        self.costs = {}
        self.stopped_at = None
        self._predictor = None
        self._task_cost = None if task_cost is None else tf.function(
            lambda batch, cov, bbox: task_cost(batch, cov, bbox)[0], reduce_retracing=True)

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        if completed not in self.epochs:
            return
        if self._predictor is None:
            self._predictor = KerasPredictor(self.detector)
        batch_costs = []

        def add_cost(batch, cov, bbox):
            batch_costs.append(float(self._task_cost(batch, cov, bbox)))

        start = time.perf_counter()
        result, _ = self.scorer.evaluate(self._predictor, self.dataset,
                                         on_batch=add_cost if self._task_cost else None)
        self.results[completed] = result
        self.echo(
            f"Validation after epoch {completed} ({time.perf_counter() - start:.1f} s):\n"
            f"{format_table(result)}"
        )
        if self._task_cost is not None:
            self._observe_cost(completed, float(np.mean(batch_costs)) if batch_costs
                               else math.nan)

    def _observe_cost(self, completed, value):
        self.costs[completed] = value
        self.echo(f"Validation cost after epoch {completed}: {value:.6g}")
        if self.controller is None:
            return
        decision = self.controller.observe(
            completed, value, int(self.model.optimizer.iterations.numpy()))
        best = float(self.controller.best_cost.numpy())
        best_epoch = int(self.controller.best_epoch.numpy())
        self.echo(f"Early stopping: {decision.replace('_', ' ')} "
                  f"(best cost {best:.6g} at epoch {best_epoch})")
        if decision == "stop":
            self.stopped_at = completed
            self.model.stop_training = True


class StatusCallback(keras.callbacks.Callback):
    """One ``status.json`` line and TensorBoard scalars per epoch.

    With dynamic loss scaling the record also holds ``skipped_steps`` (steps of the epoch
    skipped for non-finite gradients) and ``loss_scale`` (at epoch end), and an epoch with
    skipped steps logs one warning line saying how many and the new loss scale.

    Args:
        status_log: ``training.status.StatusLog``; tensorboard: ``TensorBoardWriter``.
        cost: DetectNetCost (class names, objective weights).
        num_epochs: total epochs; progress: the ProgressCallback (images/s of the epoch);
        validation: the ValidationCallback or None.
    """

    def __init__(self, status_log, tensorboard, cost, num_epochs, progress, validation=None):
        super().__init__()
        self._supports_tf_logs = True  # the step hook ignores logs: no per-step conversion
        self.status_log = status_log
        self.tensorboard = tensorboard
        self.cost = cost
        self.num_epochs = num_epochs
        self.progress = progress
        self.validation = validation
        self._epoch_start = None
        self._train_start = None
        self._first_epoch = None
        self._loss_scale = None
        self._last_batch = -1
        self.records = []

    def on_train_begin(self, logs=None):
        self._train_start = time.monotonic()
        self._loss_scale = LossScaleTracker.for_optimizer(self.model.optimizer)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._last_batch = -1
        if self._loss_scale is not None:
            self._loss_scale.start_epoch()

    def on_train_batch_end(self, batch, logs=None):
        if self._loss_scale is not None:
            self._loss_scale.observe(batch - self._last_batch)
            self._last_batch = batch

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        now = time.monotonic()
        names = self.cost.class_names
        components = self.model.component_costs.result().numpy()
        weights = self.cost.objective_weights.numpy()
        result = self.validation.results.get(completed) if self.validation else None
        epochs_done = completed - self._first_epoch
        eta = (now - self._train_start) / epochs_done * (self.num_epochs - completed)
        record = epoch_record(
            completed,
            self.num_epochs,
            loss=float(logs["loss"]),
            learning_rate=current_learning_rate(self.model.optimizer),
            step=int(self.model.optimizer.iterations.numpy()),
            costs=_by_class(names, components),
            objective_weights=_by_class(names, weights),
            validation_cost=self.validation.costs.get(completed) if self.validation else None,
            mean_average_precision=result.mean_average_precision if result else None,
            average_precision=(
                {c.name: c.average_precision for c in result.classes} if result else None
            ),
            images_per_second=self.progress.last_epoch_images_per_second,
            epoch_seconds=now - self._epoch_start,
            eta_seconds=eta,
        )
        if self._loss_scale is not None:
            skipped, scale = self._loss_scale.epoch_skipped, self._loss_scale.scale
            record.update(skipped_steps=skipped, loss_scale=scale)
            self.tensorboard.scalars(completed, {"skipped_steps": skipped, "loss_scale": scale})
            if skipped:
                logger.warning(
                    "epoch %d: %d step(s) skipped (non-finite gradients), loss scale now %g",
                    completed,
                    skipped,
                    scale,
                )
        self.records.append(record)
        self.status_log.write(record)
        self.tensorboard.epoch(record)


def _by_class(class_names, values):
    """[C, 2] array -> {class: {"cov": v, "bbox": v}}."""
    values = np.asarray(values, np.float64)
    return {
        name: {"cov": float(values[i, 0]), "bbox": float(values[i, 1])}
        for i, name in enumerate(class_names)
    }

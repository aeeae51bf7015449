"""Keras callbacks of ``qat train``: auto-weighting, validation, divergence guard, status.

Order matters at epoch end (Keras calls callbacks in list order): progress -> auto-weighting ->
validation -> checkpoint -> status, so the checkpoint holds the updated objective weights and
the status line carries the validation result.
"""

import logging
import math
import time

import numpy as np

from tao_qat.common.errors import QatError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.evaluation.report import format_table
from tao_qat.inference.predictor import KerasPredictor
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
    """Stop with a clear error naming the epoch and step when the loss is NaN or infinite."""

    def __init__(self, results_dir):
        super().__init__()
        self.results_dir = results_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: loss is {loss} at epoch {self.epoch}, step {batch + 1}; "
                f"the last complete checkpoint in {self.results_dir} is kept (lower the "
                "learning rate or check the data)"
            )


class ValidationCallback(keras.callbacks.Callback):
    """Evaluate the detector on the validation set at the given (1-based) epochs.

    Prints the per-class table and stores the EvaluationResult in ``self.results[epoch]``.

    Args:
        detector: the functional model being trained.
        scorer: ``inference.detect.DetectionScorer``.
        dataset: validation tf.data.Dataset (no augmentation, not repeated).
        epochs: iterable of 1-based epochs to validate after.
        echo: function printing one string (the table).
    """

    def __init__(self, detector, scorer, dataset, epochs, echo=print):
        super().__init__()
        self.detector = detector
        self.scorer = scorer
        self.dataset = dataset
        self.epochs = set(epochs)
        self.echo = echo
        self.results = {}
        self._predictor = None

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        if completed not in self.epochs:
            return
        if self._predictor is None:
            self._predictor = KerasPredictor(self.detector)
        start = time.perf_counter()
        result, _ = self.scorer.evaluate(self._predictor, self.dataset)
        self.results[completed] = result
        self.echo(
            f"Validation after epoch {completed} ({time.perf_counter() - start:.1f} s):\n"
            f"{format_table(result)}"
        )


class StatusCallback(keras.callbacks.Callback):
    """One ``status.json`` line and TensorBoard scalars per epoch.

    Args:
        status_log: ``training.status.StatusLog``; tensorboard: ``TensorBoardWriter``.
        cost: DetectNetCost (class names, objective weights).
        num_epochs: total epochs; progress: the ProgressCallback (images/s of the epoch);
        validation: the ValidationCallback or None.
    """

    def __init__(self, status_log, tensorboard, cost, num_epochs, progress, validation=None):
        super().__init__()
        self.status_log = status_log
        self.tensorboard = tensorboard
        self.cost = cost
        self.num_epochs = num_epochs
        self.progress = progress
        self.validation = validation
        self._epoch_start = None
        self._train_start = None
        self._first_epoch = None
        self.records = []

    def on_train_begin(self, logs=None):
        self._train_start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        if self._first_epoch is None:
            self._first_epoch = epoch

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
            mean_average_precision=result.mean_average_precision if result else None,
            average_precision=(
                {c.name: c.average_precision for c in result.classes} if result else None
            ),
            images_per_second=self.progress.last_epoch_images_per_second,
            epoch_seconds=now - self._epoch_start,
            eta_seconds=eta,
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

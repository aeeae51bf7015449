"""Keras callback showing training progress within each epoch (``common.progress.Progress``).

Per step it shows ``epoch E/N step s/S``, the running mean loss of the epoch (Keras's
``logs["loss"]``), the learning rate of the latest step, images/s and the ETA: a live bar on a
terminal, plain lines every ``every_seconds`` seconds (and/or ``every_steps`` steps) otherwise.
Use ``model.fit(..., verbose=0)`` so Keras's own progress bar does not interleave.

The callback takes Keras's step logs as tensors (``_supports_tf_logs``) and reads the loss and
learning rate only when a line or the bar is drawn, so it adds no host sync per step.
images/s of an epoch (``last_epoch_images_per_second``, written to status.json) counts every
step of the epoch, from ``on_epoch_begin`` to ``on_epoch_end`` (before any epoch-end work of the
later callbacks: validation, status, checkpoints).
"""

import time

from tao_qat.common.progress import Progress
from tao_qat.common.tensorflow_setup import keras
from tao_qat.training.optimizer import current_learning_rate

__all__ = ["ProgressCallback"]


class ProgressCallback(keras.callbacks.Callback):
    """Progress of each training epoch.

    Args:
        steps_per_epoch: steps in one epoch (None if unknown).
        num_epochs: total epochs (for ``epoch E/N``).
        global_batch_size: images per step over all replicas (for images/s).
        stream, tty, every_steps, every_seconds, clock: passed to ``Progress``.
        enabled: False on non-chief workers (nothing shown).
    """

    def __init__(
        self,
        steps_per_epoch,
        num_epochs,
        global_batch_size,
        *,
        stream=None,
        tty=None,
        every_steps=None,
        every_seconds=30.0,
        clock=time.monotonic,
        enabled=True,
    ):
        super().__init__()
        self._supports_tf_logs = True  # logs stay tensors; read only when shown
        self.steps_per_epoch = steps_per_epoch
        self.num_epochs = num_epochs
        self.global_batch_size = global_batch_size
        self._progress_args = {
            "stream": stream,
            "tty": tty,
            "every_steps": every_steps,
            "every_seconds": every_seconds,
            "clock": clock,
        }
        self.enabled = enabled
        self.progress = None
        self.last_epoch_images_per_second = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.enabled:
            return
        self.progress = Progress(
            self.steps_per_epoch,
            f"epoch {epoch + 1}/{self.num_epochs}",
            items_name="images",
            **self._progress_args,
        )

    def on_train_batch_end(self, batch, logs=None):
        if self.progress is None:
            return
        fields = {}
        if logs and "loss" in logs:
            loss = logs["loss"]
            fields["loss"] = lambda: float(loss)  # read (host sync) only when displayed
        fields["lr"] = self._learning_rate
        self.progress.update(1, items=self.global_batch_size, **fields)

    def on_epoch_end(self, epoch, logs=None):
        if self.progress is None:
            return
        if logs and "loss" in logs:
            self.progress.fields["loss"] = float(logs["loss"])
        self.last_epoch_images_per_second = self.progress.items_per_second()
        self.progress.close()
        self.progress = None

    def on_train_end(self, logs=None):
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def _learning_rate(self):
        return current_learning_rate(self.model.optimizer)

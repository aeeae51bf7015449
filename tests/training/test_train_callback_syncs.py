"""qat train's per-step callbacks take Keras's logs as tensors (no host sync per step) and still
show the latest loss and name the exact step at which the loss diverged."""

import io

import numpy as np
import pytest

from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.training.callbacks import DivergenceGuard, TrainingDiverged
from tao_qat.training.progress import ProgressCallback


class LossRecorder(keras.callbacks.Callback):
    """Records, per step, whether Keras passed the loss as a tensor, and its value."""

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True
        self.tensor = []
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.tensor.append(isinstance(logs["loss"], tf.Tensor))
        self.losses.append(float(logs["loss"]))


def dense_fit(callbacks, nan_batch=None, batches=5, learning_rate=0.0):
    """Fit y = x . w on ``batches`` batches of 2 (one epoch); batch ``nan_batch`` (1-based) holds
    a NaN input, so the loss (Keras's running mean of the epoch) is NaN from that step on."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(1, name="dense")])
    model.compile(keras.optimizers.SGD(learning_rate), loss="mse")
    x = np.arange(batches * 8, dtype=np.float32).reshape(batches * 2, 4) / 10.0
    if nan_batch is not None:
        x[2 * (nan_batch - 1), 0] = np.nan
    y = np.ones((batches * 2, 1), np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    model.fit(data, epochs=1, verbose=0, callbacks=callbacks)
    return model


def test_qat_step_callbacks_leave_the_step_logs_as_tensors():
    # With every step hook declaring _supports_tf_logs, Keras does not convert the logs to numpy
    # after each step (a host sync); a non-declaring callback would force it for all of them.
    recorder = LossRecorder()
    progress = ProgressCallback(5, 1, 2, stream=io.StringIO(), tty=False, every_seconds=None)
    dense_fit([progress, DivergenceGuard(None), recorder])
    assert recorder.tensor == [True] * 5


def test_progress_shows_the_latest_running_loss_read_when_printed():
    recorder = LossRecorder()
    stream = io.StringIO()
    progress = ProgressCallback(
        5, 1, 2, stream=stream, tty=False, every_steps=2, every_seconds=None
    )
    dense_fit([progress, recorder])
    lines = stream.getvalue().splitlines()
    shown = [float(line.split(" loss ")[1].split()[0]) for line in lines]
    # Lines at steps 2 and 4, and the closing line with the epoch's final mean loss (step 5);
    # 4 significant digits are shown.
    assert [line.split(" loss")[0] for line in lines] == [
        "epoch 1/1 step 2/5 (40%)",
        "epoch 1/1 step 4/5 (80%)",
        "epoch 1/1 step 5/5 (100%)",
    ]
    expected = [recorder.losses[1], recorder.losses[3], recorder.losses[4]]
    assert shown == pytest.approx(expected, rel=1e-3)
    assert len(set(shown)) == 3  # lr 0: the running mean changes only with the batches


@pytest.mark.parametrize(
    ("check_steps", "steps_run"),
    [
        (100, 5),  # read at epoch end only: the epoch's 5 steps ran
        (2, 4),  # read after steps 2 and 4: stopped after step 4
        (1, 3),  # read every step: stopped right after step 3
    ],
)
def test_guard_names_the_first_non_finite_step_however_late_it_reads(check_steps, steps_run):
    guard = DivergenceGuard(None, check_steps=check_steps)
    steps = LossRecorder()
    with pytest.raises(TrainingDiverged) as error:
        dense_fit([steps, guard], nan_batch=3, learning_rate=0.01)
    assert str(error.value) == (
        "training diverged at epoch 1, step 3: the loss is nan; no checkpoint was written "
        "before (lower the learning rate or check the data)"
    )
    assert len(steps.losses) == steps_run
    assert np.isfinite(steps.losses[:2]).all() and np.isnan(steps.losses[2:]).all()

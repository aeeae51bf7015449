"""Non-finite training: a diverging ``qat train`` stops with one line naming the epoch and step
and keeps the last good checkpoint (no model with NaN or infinite weights is ever saved under a
final name); with FLOAT16 and dynamic cost scaling, steps with non-finite gradients are skipped,
counted in status.json and reported, not fatal.

Divergence comes from user-level spec values only: an absurd ``max_learning_rate``.
"""

import math

import numpy as np
import pytest
from reliability_helpers import (
    assert_model_loads,
    check_results_complete,
    edit_spec,
    hdf5_files,
    status_lines,
    temp_files,
    tiny_project,
)

from tao_qat.common.tensorflow_setup import keras
from tao_qat.training.callbacks import DivergenceGuard, TrainingDiverged, skipped_steps
from tao_qat.training.checkpoints import CheckpointCallback, find_latest_checkpoint

# Six one-step epochs; the soft-start schedule ramps log-linearly from min_learning_rate 1e-5.
CASES = {
    # max 1e30 reached at half of training: lr 1e-5, 4.6e6, 2.2e18 for epochs 1-3; the weights
    # stay finite but absurd and the loss of epoch 4's only step is NaN.
    "nan_loss": (
        {
            "max_learning_rate: 0.005": "max_learning_rate: 1e30",
            "soft_start: 0.1": "soft_start: 0.5",
            "annealing: 0.7": "annealing: 0.9",
        },
        4,
        "step 1: the loss is nan",
        3,
    ),
    # max 3.4e38 (float32 tops out at 3.40e38) from epoch 2 (soft_start 0.1 < 1/6): the loss of
    # epoch 2's step is computed before the update and is finite, but Adam's update overflows
    # and conv1's kernel becomes infinite. Without the epoch-end weight check, the checkpoint
    # callback would save that model as model.epoch-2.hdf5.
    "inf_weights": (
        {
            "max_learning_rate: 0.005": "max_learning_rate: 3.4e38",
            "annealing: 0.7": "annealing: 0.9",
        },
        2,
        "end (step 1): weight conv1/kernel:0 is not finite",
        1,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(case, tmp_path, run_qat):
    replacements, epoch, what, kept = CASES[case]
    spec = tiny_project(tmp_path, epochs=6)
    edit_spec(spec, replacements)
    results = tmp_path / "results"
    code, _, err = run_qat("train", "-e", spec, "-r", results)
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("qat train: error:")]
    assert errors == [
        f"qat train: error: training diverged at epoch {epoch}, {what}; the checkpoint of epoch "
        f"{kept} ({results}/checkpoints/epoch-{kept}) is kept (lower the learning rate or check "
        "the data)"
    ]
    # Epochs before the divergence are saved, loadable and finite; nothing of the diverged one.
    assert sorted(hdf5_files(results)) == list(range(1, kept + 1))
    for path in hdf5_files(results).values():
        assert_model_loads(path, finite=True)
    assert find_latest_checkpoint(results).epoch == kept
    check_results_complete(results, load=False)
    assert not (results / "weights" / "model.hdf5").exists()
    assert temp_files(results) == []
    records = status_lines(results)
    assert [r["epoch"] for r in records if r.get("epoch")] == list(range(1, kept + 1))
    assert records[-1]["status"] == "FAILURE"
    assert f"training diverged at epoch {epoch}" in records[-1]["message"]


def _tiny_fit(results, callbacks, epochs=3):
    """Fit a 4 -> 1 dense model for ``epochs`` one-step epochs with ``callbacks``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(1, name="dense")])
    model.compile(keras.optimizers.Adam(1e-2), loss="mse")
    x = np.ones((8, 4), np.float32)
    y = np.zeros((8, 1), np.float32)
    saver = CheckpointCallback(
        results, 1, epochs, lambda: {"model": model, "optimizer": model.optimizer}
    )
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=[*callbacks, saver])


class PoisonWeights(keras.callbacks.Callback):
    """Test-side stand-in for an update that overflows: after the last step of ``epoch`` (1-based)
    it sets the kernel to NaN; the loss Keras reports for that step is still finite."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.current = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            assert math.isfinite(logs["loss"])
            kernel = self.model.get_layer("dense").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_nan_weights_after_a_finite_loss_are_never_checkpointed(tmp_path):
    # Callback order as in qat train: the guard runs before the checkpoint callback.
    with pytest.raises(TrainingDiverged) as error:
        _tiny_fit(tmp_path, [PoisonWeights(2), DivergenceGuard(tmp_path)])
    assert str(error.value) == (
        "training diverged at epoch 2, end (step 1): weight dense/kernel:0 is not finite; the "
        f"checkpoint of epoch 1 ({tmp_path}/checkpoints/epoch-1) is kept (lower the learning "
        "rate or check the data)"
    )
    assert sorted(hdf5_files(tmp_path)) == [1]
    assert find_latest_checkpoint(tmp_path).epoch == 1
    assert_model_loads(hdf5_files(tmp_path)[1], finite=True)


def test_skipped_steps_from_loss_scale_transitions():
    # (scale, counter) before -> after n steps; growth_steps large unless noted.
    assert skipped_steps(1024.0, 5, 1024.0, 6, 1) == 0  # finite step: counter + 1
    assert skipped_steps(1024.0, 1, 2048.0, 0, 1) == 0  # finite step that grew the scale
    assert skipped_steps(1024.0, 5, 512.0, 0, 1) == 1  # skipped: halved, counter reset
    assert skipped_steps(1.0, 3, 1.0, 0, 1) == 1  # skipped at the floor scale 1
    assert skipped_steps(1024.0, 5, 1024.0, 9, 4) == 0  # 4 finite steps between observations
    assert skipped_steps(1024.0, 5, 128.0, 1, 4) == 3  # 3 halvings then 1 finite step
    assert skipped_steps(1024.0, 5, 1024.0, 5, 0) == 0  # no step


@pytest.mark.slow
def test_float16_overflow_steps_are_skipped_counted_and_reported(tmp_path, run_qat, caplog):
    spec = tiny_project(tmp_path, epochs=3, batch_size=4)  # 2 steps per epoch
    edit_spec(
        spec,
        {
            "cost_scaling { initial_exponent: 20.0": "cost_scaling { enabled: true "
            "initial_exponent: 24.0",
            '  arch: "resnet"\n': '  arch: "resnet"\n  training_precision { backend_floatx: '
            "FLOAT16 }\n",
        },
    )
    results = tmp_path / "results"
    code, _, err = run_qat("train", "-e", spec, "-r", results)
    assert code == 0, err
    records = [r for r in status_lines(results) if r.get("epoch")]
    skipped = [r["skipped_steps"] for r in records]
    scales = [r["loss_scale"] for r in records]
    # A loss scale of 2^24 overflows float16 gradients (max 65504) at first: steps are skipped.
    assert sum(skipped) >= 1
    # The scale only grows after round(1 / increment 0.005) = 200 finite steps, never within 6,
    # so it is 2^24 halved once per skipped step: the counts match the optimizer's state.
    assert scales == [2.0 ** (24 - n) for n in np.cumsum(skipped)]
    # One warning line per epoch with skipped steps (on stderr outside pytest).
    expected = [
        f"epoch {r['epoch']}: {r['skipped_steps']} step(s) skipped (non-finite gradients), "
        f"loss scale now {r['loss_scale']:g}"
        for r in records
        if r["skipped_steps"]
    ]
    assert [m for m in caplog.messages if "skipped (non-finite" in m] == expected
    assert_model_loads(results / "weights" / "model.hdf5", finite=True)

"""Checkpoints: layout, completeness rules, pruning, exact resume, and survival of kill -9."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tiny_keras import tiny_data, tiny_dataset, tiny_model, weights_of

from tao_qat.common.errors import DataError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.spec.proto import training_config_pb2
from tao_qat.training.checkpoints import (
    CheckpointCallback,
    checkpoint_interval,
    find_latest_checkpoint,
    hdf5_checkpoint_path,
    is_checkpoint_epoch,
    list_checkpoints,
    prune_checkpoints,
    restore_checkpoint,
    save_checkpoint,
)
from tao_qat.training.optimizer import CostScaling
from tao_qat.training.schedules import EarlyStoppingController

HERE = Path(__file__).resolve().parent


def compiled_model(seed=0):
    model = tiny_model(seed)
    model.compile(keras.optimizers.Adam(1e-2), loss="mse")
    return model


def objects_of(model, extra=None):
    objects = {"model": model, "optimizer": model.optimizer}
    objects.update(extra or {})
    return objects


def test_interval_rules():
    config = training_config_pb2.TrainingConfig()
    assert checkpoint_interval(config) == 10  # 0 -> 10
    config.checkpoint_interval = 3
    assert checkpoint_interval(config) == 3
    # interval 3, 7 epochs: after epochs 3, 6 and the last one (7).
    assert [e for e in range(1, 8) if is_checkpoint_epoch(e, 3, 7)] == [3, 6, 7]


def test_save_writes_layout_and_marker(tmp_path):
    model = compiled_model()
    x, y = tiny_data(4)
    model.train_on_batch(x, y)
    info = save_checkpoint(tmp_path, 5, objects_of(model), model=model)
    assert info.path == tmp_path / "checkpoints" / "epoch-5"
    names = sorted(p.name for p in info.path.iterdir())
    assert names == ["COMPLETE.json", "ckpt.data-00000-of-00001", "ckpt.index"]
    marker = json.loads((info.path / "COMPLETE.json").read_text())
    assert marker["epoch"] == 5
    assert marker["files"]["ckpt.index"] == (info.path / "ckpt.index").stat().st_size
    assert hdf5_checkpoint_path(tmp_path, 5) == tmp_path / "model.epoch-5.hdf5"
    loaded = keras.models.load_model(tmp_path / "model.epoch-5.hdf5", compile=False)
    for a, b in zip(weights_of(model), weights_of(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert find_latest_checkpoint(tmp_path) == info


def test_incomplete_checkpoints_are_invisible(tmp_path):
    model = compiled_model()
    good = save_checkpoint(tmp_path, 4, objects_of(model))
    root = tmp_path / "checkpoints"
    # a temp folder of a save killed before the rename, even with a marker inside
    (root / ".tmp-epoch-9-abc").mkdir()
    (root / ".tmp-epoch-9-abc" / "COMPLETE.json").write_text('{"epoch": 9, "files": {"a": 1}}')
    # a final-named folder without marker
    (root / "epoch-7").mkdir()
    (root / "epoch-7" / "ckpt.index").write_bytes(b"x")
    # a copy whose data file got truncated (size differs from the marker)
    broken = save_checkpoint(tmp_path, 8, objects_of(model), keep=10)
    data = broken.path / "ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:10])
    # a garbage marker, and a marker naming another epoch
    (root / "epoch-6").mkdir()
    (root / "epoch-6" / "COMPLETE.json").write_text("{not json")
    (root / "epoch-5").mkdir()
    (root / "epoch-5" / "COMPLETE.json").write_text('{"epoch": 3, "files": {}}')
    assert [info.epoch for info in list_checkpoints(tmp_path)] == [4]
    assert find_latest_checkpoint(tmp_path) == good
    assert find_latest_checkpoint(tmp_path / "nothing-here") is None
    # the next save removes the stale temp folder
    save_checkpoint(tmp_path, 10, objects_of(model), keep=10)
    assert not (root / ".tmp-epoch-9-abc").exists()


def test_pruning_keeps_the_newest(tmp_path):
    model = compiled_model()
    for epoch in (1, 2, 3, 4):
        save_checkpoint(tmp_path, epoch, objects_of(model), keep=2)
    assert [info.epoch for info in list_checkpoints(tmp_path)] == [3, 4]
    assert prune_checkpoints(tmp_path, keep=0) == [tmp_path / "checkpoints" / "epoch-3"]
    assert [info.epoch for info in list_checkpoints(tmp_path)] == [4]
    assert prune_checkpoints(tmp_path, keep=1) == []
    # re-writing an existing epoch replaces it
    save_checkpoint(tmp_path, 4, objects_of(model), keep=2)
    assert [info.epoch for info in list_checkpoints(tmp_path)] == [4]


def test_resume_restores_weights_and_optimizer_exactly(tmp_path):
    x, y = tiny_data(8)
    reference = compiled_model()
    extra = {"auto_weights": tf.Variable([0.25, 0.75], name="auto_weights")}
    for _ in range(3):
        reference.train_on_batch(x, y)
    extra["auto_weights"].assign([0.4, 0.6])
    save_checkpoint(tmp_path, 3, objects_of(reference, extra))

    resumed = compiled_model(seed=1)  # different initial weights
    resumed_extra = {"auto_weights": tf.Variable([0.0, 0.0])}
    epoch = restore_checkpoint(find_latest_checkpoint(tmp_path), objects_of(resumed, resumed_extra))
    assert epoch == 3
    assert int(resumed.optimizer.iterations.numpy()) == 3
    np.testing.assert_array_equal(resumed_extra["auto_weights"].numpy(), np.float32([0.4, 0.6]))
    for a, b in zip(weights_of(reference), weights_of(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    # Adam moments restored too: two more identical steps give identical weights.
    for _ in range(2):
        reference.train_on_batch(x, y)
        resumed.train_on_batch(x, y)
    for a, b in zip(weights_of(reference), weights_of(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)
    assert int(resumed.optimizer.iterations.numpy()) == 5


def test_restore_into_a_different_model_is_a_data_error(tmp_path):
    save_checkpoint(tmp_path, 1, objects_of(compiled_model()))
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(5, 1)(inputs))
    other.compile(keras.optimizers.Adam(1e-3), loss="mse")
    with pytest.raises(DataError, match=r"epoch-1: cannot resume from this checkpoint"):
        restore_checkpoint(find_latest_checkpoint(tmp_path), objects_of(other))


def test_callback_saves_on_interval_and_last_epoch(tmp_path):
    model = compiled_model()
    callback = CheckpointCallback(
        tmp_path, interval=2, num_epochs=5, objects=lambda: objects_of(model), keep=2
    )
    model.fit(tiny_dataset(8), epochs=5, verbose=0, callbacks=[callback])
    assert [info.epoch for info in list_checkpoints(tmp_path)] == [4, 5]
    assert sorted(p.name for p in tmp_path.glob("model.epoch-*.hdf5")) == [
        "model.epoch-2.hdf5",
        "model.epoch-4.hdf5",
        "model.epoch-5.hdf5",
    ]
    # fit resumes with initial_epoch = restored epoch
    resumed = compiled_model(seed=3)
    epoch = restore_checkpoint(find_latest_checkpoint(tmp_path), objects_of(resumed))
    assert epoch == 5 and int(resumed.optimizer.iterations.numpy()) == 10  # 2 steps x 5


def test_callback_hdf5_of_the_inner_model_and_loss_scale_and_early_stopping_state(tmp_path):
    # fit runs a wrapper (inner model + a scaling layer); the .hdf5 holds the inner model.
    inner = tiny_model()
    inputs = keras.Input((8, 8, 3))
    wrapper = keras.Model(inputs, keras.layers.Rescaling(2.0)(inner(inputs)))
    optimizer = CostScaling(True, 10.0, 0.5, 1.0).wrap(keras.optimizers.Adam(1e-3))
    wrapper.compile(optimizer, loss="mse")
    controller = EarlyStoppingController(patience_epochs=1, annealing_steps=4)

    def objects():
        return {"model": inner, "optimizer": optimizer, "early_stopping": controller}

    callback = CheckpointCallback(
        tmp_path, interval=1, num_epochs=1, objects=objects, hdf5_model=inner
    )
    controller.observe(1, 2.0, 0)
    controller.observe(2, 3.0, 2)  # starts annealing at step 2
    wrapper.fit(tiny_dataset(8), epochs=1, verbose=0, callbacks=[callback])  # 2 steps
    loaded = keras.models.load_model(tmp_path / "model.epoch-1.hdf5", compile=False)
    assert loaded.output_shape == inner.output_shape == (None, 8, 8, 2)
    assert float(optimizer.loss_scale) == 2.0**11  # 2**10 doubled after 2 finite steps

    inner2 = tiny_model(seed=4)
    optimizer2 = CostScaling(True, 3.0, 0.5, 1.0).wrap(keras.optimizers.Adam(1e-3))
    controller2 = EarlyStoppingController(patience_epochs=1, annealing_steps=4)
    restore_checkpoint(
        find_latest_checkpoint(tmp_path),
        {"model": inner2, "optimizer": optimizer2, "early_stopping": controller2},
    )
    assert float(optimizer2.loss_scale) == 2.0**11
    assert int(optimizer2.iterations.numpy()) == 2
    assert bool(controller2.in_annealing.numpy())
    assert int(controller2.phase_start_step.numpy()) == 2
    assert (float(controller2.best_cost.numpy()), int(controller2.best_epoch.numpy())) == (3.0, 2)


def test_non_chief_writes_nothing_in_results_dir(tmp_path):
    model = compiled_model()
    assert save_checkpoint(tmp_path, 1, objects_of(model), model=model, is_chief=False) is None
    assert list(tmp_path.iterdir()) == []


def _wait_for_line(process, prefix, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and process.poll() is not None:
            raise AssertionError(f"writer exited early: {process.stderr.read()[-2000:]}")
    raise AssertionError("timed out waiting for the checkpoint writer")


@pytest.mark.slow
def test_checkpoints_survive_kill_minus_9(tmp_path):
    # A writer saves a checkpoint after every step; we SIGKILL it at random moments (3 times,
    # resuming in between): every visible checkpoint must restore, and epochs keep increasing.
    rng = random.Random(1234)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    previous = 0
    for _ in range(3):
        process = subprocess.Popen(
            [sys.executable, str(HERE / "ckpt_writer.py"), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            _wait_for_line(process, "saved", timeout=120)
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            process.stdout.close()
            process.stderr.close()
        infos = list_checkpoints(tmp_path)
        assert infos and infos[-1].epoch > previous
        assert len(infos) <= 3 + 1  # keep=3 (+1 if killed between rename and prune)
        for info in infos:
            model = compiled_model(seed=5)
            assert restore_checkpoint(info, objects_of(model)) == info.epoch
            assert int(model.optimizer.iterations.numpy()) == info.epoch
        previous = infos[-1].epoch

"""``qat train --gpus 2`` (MirroredStrategy over two logical CPU devices) matches a single-device
run with the same global batch. Batch normalization is off: with BN each replica normalizes
with its own half batch, which is a different computation by design."""

import os
import subprocess
import sys

import numpy as np
import pytest
from synthetic_workflow import make_synthetic_project

TOLERANCE = 1e-4  # max |w_mirrored - w_single| after 12 Adam steps


def _train(spec, results, gpus, replicas_env):
    env = dict(os.environ, TAO_QAT_CPU_REPLICAS=str(replicas_env))
    command = [sys.executable, "-m", "tao_qat.cli.main", "train", "-e", str(spec), "-r",
               str(results), "--gpus", str(gpus)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _max_difference(model_a, model_b):
    return max(float(np.max(np.abs(a.numpy() - b.numpy())))
               for a, b in zip(model_a.weights, model_b.weights, strict=True))


@pytest.mark.slow
def test_mirrored_two_replicas_equal_single_device(tmp_path):
    from tao_qat.modeling.model_io import load_model_file

    spec = make_synthetic_project(tmp_path, num_train=24, num_val=4, width=64, height=64,
                                  epochs=2, batch_size=4)
    text = spec.read_text().replace("use_batch_norm: true", "use_batch_norm: false")
    single_spec = tmp_path / "single.txt"
    single_spec.write_text(text)
    mirrored_spec = tmp_path / "mirrored.txt"  # 2 replicas x 2 images = the same global batch
    mirrored_spec.write_text(text.replace("batch_size_per_gpu: 4", "batch_size_per_gpu: 2"))

    _train(single_spec, tmp_path / "single", 1, 0)
    out = _train(mirrored_spec, tmp_path / "mirrored", 2, 2)
    assert "6 steps/epoch of 4 images" in out

    def load(run, name):
        return load_model_file(tmp_path / run / name)

    difference = _max_difference(load("single", "weights/model.hdf5"),
                                 load("mirrored", "weights/model.hdf5"))
    assert difference < TOLERANCE, difference
    # The check can fail: epoch 2 moved the weights by far more than the tolerance.
    moved = _max_difference(load("single", "model.epoch-1.hdf5"),
                            load("single", "model.epoch-2.hdf5"))
    assert moved > 10 * TOLERANCE, moved

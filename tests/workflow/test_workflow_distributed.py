"""``qat train --gpus 2`` (MirroredStrategy over two logical CPU devices) matches a single-device
run with the same global batch. Batch normalization is off: with BN each replica normalizes
with its own half batch, which is a different computation by design."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from synthetic_workflow import make_synthetic_project

TOLERANCE = 1e-4  # max |w_mirrored - w_single| after 12 Adam steps


def _command(spec, results, gpus):
    return [sys.executable, "-m", "tao_qat.cli.main", "train", "-e", str(spec), "-r",
            str(results), "--gpus", str(gpus)]


def _train(spec, results, gpus, replicas_env):
    env = dict(os.environ, TAO_QAT_CPU_REPLICAS=str(replicas_env))
    env.pop("TF_CONFIG", None)
    done = subprocess.run(_command(spec, results, gpus), capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _specs(tmp_path):
    """(single-device spec with batch 4, spec with batch 2 per replica), BN off, 2 epochs."""
    spec = make_synthetic_project(tmp_path, num_train=24, num_val=4, width=64, height=64,
                                  epochs=2, batch_size=4)
    text = spec.read_text().replace("use_batch_norm: true", "use_batch_norm: false")
    single_spec = tmp_path / "single.txt"
    single_spec.write_text(text)
    split_spec = tmp_path / "split.txt"  # 2 replicas x 2 images = the same global batch
    split_spec.write_text(text.replace("batch_size_per_gpu: 4", "batch_size_per_gpu: 2"))
    return single_spec, split_spec


def _max_difference(model_a, model_b):
    return max(float(np.max(np.abs(a.numpy() - b.numpy())))
               for a, b in zip(model_a.weights, model_b.weights, strict=True))


@pytest.mark.slow
def test_mirrored_two_replicas_equal_single_device(tmp_path):
    from tao_qat.modeling.model_io import load_model_file

    single_spec, mirrored_spec = _specs(tmp_path)
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


@pytest.mark.slow
def test_two_worker_processes_equal_single_device(tmp_path):
    """MultiWorkerMirroredStrategy: two ``qat train`` processes on localhost (TF_CONFIG), one
    CPU replica each, sharing the results folder; the chief writes, the other writes nothing."""
    from tao_qat.modeling.model_io import load_model_file

    single_spec, split_spec = _specs(tmp_path)
    _train(single_spec, tmp_path / "single", 1, 0)
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    results = tmp_path / "workers"
    processes = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TAO_QAT_CPU_REPLICAS="0")
        processes.append(subprocess.Popen(_command(split_spec, results, 1), env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    assert "6 steps/epoch of 4 images" in outputs[0]

    difference = _max_difference(load_model_file(tmp_path / "single/weights/model.hdf5"),
                                 load_model_file(results / "weights" / "model.hdf5"))
    assert difference < TOLERANCE, difference

"""Distribution: TAO's step count, TF_CONFIG handling, and mirrored / multi-worker training that
matches a single device trained on the same global batch."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dist_worker import GLOBAL_BATCH, STEPS
from tiny_keras import tiny_dataset, tiny_model

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.training.checkpoints import find_latest_checkpoint, restore_checkpoint
from tao_qat.training.distribution import (
    build_strategy,
    global_batch_size,
    is_chief,
    read_tf_config,
    steps_per_epoch,
)
from tao_qat.training.optimizer import AdamSettings

HERE = Path(__file__).resolve().parent
# float32 sums reduced in another order across replicas, amplified a little by Adam over 3 steps
TOLERANCE = 1e-5


def test_steps_per_epoch_like_tao():
    # ceil(ceil(10 / 3) / 2) = ceil(4 / 2) = 2; 1 GPU: ceil(10 / 3) = 4
    assert steps_per_epoch(10, 3, 2) == 2
    assert steps_per_epoch(10, 3) == 4
    assert steps_per_epoch(12, 3, 4) == 1


def test_single_device_strategies(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for gpus in (0, 1):
        strategy = build_strategy(gpus)
        assert strategy is tf.distribute.get_strategy()
        assert global_batch_size(4, strategy) == 4
        assert is_chief(strategy)
    with pytest.raises(UsageError, match=r"--gpus 2: only 0 GPU\(s\) visible"):
        build_strategy(2)
    with pytest.raises(UsageError, match="--gpus: must be >= 0"):
        build_strategy(-1)


def test_tf_config_parsing_and_chief(monkeypatch):
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    )
    assert read_tf_config()["task"]["index"] == 1
    assert not is_chief()
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    )
    assert is_chief()
    with_chief = {"chief": ["localhost:3"], **cluster}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    )
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", "{oops")
    with pytest.raises(UsageError, match="TF_CONFIG: not valid JSON"):
        read_tf_config()
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}})
    )
    with pytest.raises(UsageError, match="TF_CONFIG: task .* is not in the cluster"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", "")
    assert read_tf_config() is None and is_chief()


def single_device_weights():
    """The tiny model after 3 Adam steps on global batches of 8, on one device."""
    model = tiny_model()
    model.compile(AdamSettings().build(1e-2), loss="mse")
    model.fit(tiny_dataset(GLOBAL_BATCH, n=GLOBAL_BATCH * STEPS), epochs=1, verbose=0)
    return model.get_weights()


def load_result(path):
    result = np.load(path)
    weights = [result[f"arr_{i}"] for i in range(len(result.files) - 3)]
    return result, weights


def assert_weights_close(expected, actual):
    assert len(expected) == len(actual)
    for a, b in zip(expected, actual, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=TOLERANCE)


def worker_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
    out, results_dir = tmp_path / "mirrored.npz", tmp_path / "results"
    subprocess.run(
        [sys.executable, str(HERE / "dist_worker.py"), "mirrored", "2", str(out), results_dir],
        check=True,
        env=worker_env(),
        timeout=300,
        capture_output=True,
    )
    result, weights = load_result(out)
    assert str(result["strategy"]) == "MirroredStrategy"
    assert int(result["replicas"]) == 2 and int(result["global_batch"]) == 8
    expected = single_device_weights()
    assert_weights_close(expected, weights)
    # the comparison is meaningful: training moved the weights much more than the tolerance
    initial = tiny_model().get_weights()
    assert max(np.abs(a - b).max() for a, b in zip(expected, initial, strict=True)) > 1e-3
    # a checkpoint written under MirroredStrategy resumes on a single device, Adam state included
    model = tiny_model(seed=7)
    model.compile(AdamSettings().build(1e-2), loss="mse")
    restore_checkpoint(
        find_latest_checkpoint(results_dir), {"model": model, "optimizer": model.optimizer}
    )
    assert int(model.optimizer.iterations.numpy()) == STEPS
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_multi_worker_on_localhost_matches_one_device(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    processes = []
    start = time.monotonic()
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "dist_worker.py"), "multiworker", str(outs[index])],
                env=worker_env(TF_CONFIG=tf_config),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    elapsed = time.monotonic() - start
    assert outs[0].exists() and not outs[1].exists()  # only the chief (worker 0) writes
    result, weights = load_result(outs[0])
    assert str(result["strategy"]) == "MultiWorkerMirroredStrategy"
    assert int(result["replicas"]) == 2 and int(result["global_batch"]) == 8
    assert_weights_close(single_device_weights(), weights)
    print(f"multi-worker run: {elapsed:.1f} s")

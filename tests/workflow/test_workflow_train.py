"""``qat train`` end to end on synthetic data: results layout, status, refusal, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from synthetic_workflow import make_synthetic_project

from tao_qat.training.status import read_status


def test_results_layout_matches_tao(trained_project):
    _, _, results, result = trained_project
    assert result.model_path == results / "weights" / "model.hdf5"
    assert result.model_path.is_file()
    # checkpoint_interval 1: a user .hdf5 and a resumable checkpoint for every epoch.
    assert (results / "model.epoch-1.hdf5").is_file()
    assert (results / "model.epoch-2.hdf5").is_file()
    assert sorted(p.name for p in (results / "checkpoints").iterdir()) == ["epoch-1", "epoch-2"]
    assert (results / "experiment_spec.txt").read_text().startswith("random_seed: 7")
    assert any((results / "events").iterdir()), "TensorBoard event files are written"


def test_status_has_one_line_per_epoch_with_validation(trained_project):
    _, _, results, result = trained_project
    records = read_status(results / "status.json")
    epochs = [r for r in records if r.get("epoch") is not None]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["status"] for r in records if r.get("epoch") is None] == ["STARTED", "SUCCESS"]
    for record in epochs:
        assert np.isfinite(record["loss"]) and record["loss"] > 0
        assert record["images_per_second"] > 0
        assert set(record["costs"]) == {"car", "person"}
        # first_validation_epoch 1, period 1: validated after every epoch.
        assert 0.0 <= record["mean_average_precision"] <= 1.0
        assert np.isfinite(record["validation_cost"]) and record["validation_cost"] > 0
        assert set(record["average_precision"]) == {"car", "person"}
    # The learning rate follows the soft-start schedule: it changes between epochs.
    assert epochs[0]["learning_rate"] != epochs[1]["learning_rate"]
    assert set(result.validation) == {1, 2}


def test_finished_training_is_not_overwritten_without_force(trained_project, run_qat):
    _, spec, results, _ = trained_project
    code, _, err = run_qat("train", "-e", spec, "-r", results)
    assert code == 2
    assert "weights/model.hdf5: already exists (use --force to overwrite)" in err
    assert "Traceback" not in err


def test_no_resume_with_checkpoints_needs_force(trained_project, run_qat, tmp_path):
    _, spec, results, _ = trained_project
    (results / "weights" / "model.hdf5").rename(tmp_path / "model.hdf5")
    try:
        code, _, err = run_qat("train", "-e", spec, "-r", results, "--no-resume")
        assert code == 2 and "--no-resume" in err and "--force" in err
    finally:
        (tmp_path / "model.hdf5").rename(results / "weights" / "model.hdf5")


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(
        trained_project, tmp_path):
    """Delete everything after epoch 1 of a finished 2-epoch run and train again: the resumed
    run sees the same shuffled, augmented batches, so it ends where the uninterrupted run did."""
    from tao_qat.modeling.model_io import load_model_file
    from tao_qat.training.trainer import TrainOptions, run_train

    _, spec, results, _ = trained_project
    resumed = tmp_path / "resumed"
    shutil.copytree(results, resumed)
    shutil.rmtree(resumed / "weights")
    shutil.rmtree(resumed / "checkpoints" / "epoch-2")
    (resumed / "model.epoch-2.hdf5").unlink()
    result = run_train(TrainOptions(spec_path=str(spec), results_dir=str(resumed),
                                    echo=lambda _: None))
    assert result.resumed_from_epoch == 1 and result.epochs_trained == 1
    expected = load_model_file(results / "weights" / "model.hdf5")
    actual = load_model_file(result.model_path)
    moved = 0
    for want, got in zip(expected.get_weights(), actual.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        moved += 1
    assert moved > 10
    first = load_model_file(results / "model.epoch-1.hdf5")
    assert any(not np.allclose(a, b) for a, b in zip(first.get_weights(),
                                                     actual.get_weights(), strict=True))


def _epoch_lines(path):
    if not path.exists():
        return []
    return [r["epoch"] for r in read_status(path) if r.get("epoch") is not None]


@pytest.mark.slow
def test_kill_9_mid_training_then_rerun_resumes(tmp_path):
    """kill -9 once epoch 2 has been checkpointed (training is then inside epoch 3), re-run the
    same command: it resumes from a complete checkpoint, finishes, and status.json lists every
    epoch exactly once."""
    spec = make_synthetic_project(tmp_path, num_train=24, num_val=4, width=64, height=64,
                                  epochs=5, first_validation_epoch=5)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "tao_qat.cli.main", "train", "-e", str(spec), "-r",
               str(results)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while not (results / "checkpoints" / "epoch-2" / "COMPLETE.json").exists():
        assert process.poll() is None, process.stdout.read().decode()
        assert time.monotonic() < deadline, "training too slow"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (results / "weights" / "model.hdf5").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    resumed = int(rerun.stdout.split("Resuming from epoch ")[1].split()[0])
    assert resumed >= 2
    assert _epoch_lines(results / "status.json") == [1, 2, 3, 4, 5]
    assert (results / "weights" / "model.hdf5").is_file()
    complete = json.loads((results / "checkpoints" / "epoch-5" / "COMPLETE.json").read_text())
    assert complete["epoch"] == 5

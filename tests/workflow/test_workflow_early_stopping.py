"""``early_stopping_annealing_schedule`` end to end: the validation cost drives the learning rate
and stops training (TAO's LRAnnealingEarlyStoppingHook), also across a resume."""

import shutil

import pytest
from synthetic_workflow import make_synthetic_project

from tao_qat.common.errors import SpecError
from tao_qat.training.status import read_status

# Rates so small that no weight moves in float32 and, without batch norm or auto-weighting,
# the validation cost is the same after every epoch: it never improves after epoch 1.
MAX_LR, MIN_LR = 2e-30, 1e-30
EARLY_STOPPING = f"""learning_rate {{ early_stopping_annealing_schedule {{
    min_learning_rate: {MIN_LR} max_learning_rate: {MAX_LR}
    soft_start_epochs: 0 annealing_epochs: 1 patience_steps: 1 }} }}"""


def _early_stopping_project(root, **spec_args):
    spec = make_synthetic_project(root, num_train=8, num_val=4, width=64, height=64, epochs=6,
                                  **spec_args)
    text = spec.read_text()
    start = text.index("learning_rate {")
    end = text.index("regularizer")
    text = text[:start] + EARLY_STOPPING + "\n  " + text[end:]
    spec.write_text(text.replace("use_batch_norm: true", "use_batch_norm: false"))
    return spec


def _train(spec, results):
    from tao_qat.training.trainer import TrainOptions, run_train

    lines = []
    result = run_train(TrainOptions(spec_path=str(spec), results_dir=str(results),
                                    echo=lines.append))
    return result, "\n".join(lines)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("early")
    spec = _early_stopping_project(root)
    results = root / "results"
    result, output = _train(spec, results)
    return spec, results, result, output


def test_flat_validation_cost_anneals_after_patience_then_stops(stopped_run):
    """Epoch 1 sets the best cost; epoch 2 (no improvement for 1 epoch) starts annealing;
    epoch 3 is one annealing epoch (= annealing_steps) in, not more; epoch 4 stops."""
    _, results, result, output = stopped_run
    assert result.stopped_early_at_epoch == 4 and result.epochs_trained == 4
    records = read_status(results / "status.json")
    epochs = [r for r in records if r.get("epoch") is not None]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    costs = [r["validation_cost"] for r in epochs]
    assert costs[0] > 0 and costs == [costs[0]] * 4
    # Learning rate of each epoch's last step: held at max (soft_start 0) until annealing
    # starts after epoch 2, then at min once annealing_steps (one epoch) have passed.
    rates = [r["learning_rate"] for r in epochs]
    assert rates[:2] == pytest.approx([MAX_LR] * 2, rel=1e-5)
    assert rates[2:] == pytest.approx([MIN_LR] * 2, rel=1e-5)
    assert [line.split(" (")[0] for line in output.splitlines()
            if line.startswith("Early stopping:")] == [
        "Early stopping: improved", "Early stopping: annealing started",
        "Early stopping: waiting", "Early stopping: stop"]
    final = [r for r in records if r.get("status") == "SUCCESS"]
    assert "stopped early at epoch 4" in final[0]["message"]
    assert (results / "weights" / "model.hdf5").is_file()


def test_resume_after_the_stop_decision_trains_no_further(stopped_run, tmp_path):
    """A kill after the epoch-4 checkpoint but before the final model: the rerun restores the
    stop flag and writes the final model without training more epochs."""
    spec, results, _, _ = stopped_run
    resumed = tmp_path / "resumed"
    shutil.copytree(results, resumed)
    shutil.rmtree(resumed / "weights")
    result, output = _train(spec, resumed)
    assert result.resumed_from_epoch == 4 and result.epochs_trained == 0
    assert result.stopped_early_at_epoch == 4
    assert "Early stopping had already stopped training at epoch 4" in output
    assert (resumed / "weights" / "model.hdf5").is_file()


def test_early_stopping_without_validation_data_names_the_field(tmp_path):
    spec = _early_stopping_project(tmp_path)
    text = spec.read_text()
    start = text.index("  validation_data_source")
    spec.write_text(text[:start] + text[text.index("\n", start) + 1:])
    with pytest.raises(SpecError, match="early_stopping_annealing_schedule: needs validation"):
        _train(spec, tmp_path / "results")

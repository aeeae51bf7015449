"""``qat evaluate -f onnx`` scores the models ``qat export`` writes (FP32 and Q/DQ INT8) with
the same evaluator as the Keras model."""

import pytest
from export_cli_helpers import run_cli

from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate


@pytest.fixture(scope="module")
def exported(models, project, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate_export")
    code, _, err = run_cli(
        "export",
        "-m",
        models["float"],
        "-o",
        folder / "model.onnx",
        "-e",
        project,
        "--data_type",
        "int8",
        "--batches",
        2,
        "--batch_size",
        4,
    )
    assert code == 0, err
    return folder


def _evaluate(project, model_path, framework):
    return run_evaluate(
        EvaluateOptions(
            spec_path=str(project),
            model_path=str(model_path),
            framework=framework,
            echo=lambda _: None,
        )
    )


def test_evaluate_fp32_onnx_equals_keras(run_qat, exported, project, models):
    code, out, err = run_qat("evaluate", "-e", project, "-m", exported / "model.onnx", "-f", "onnx")
    assert code == 0, err
    assert "| car " in out and "Mean average precision (in %)" in out
    keras = _evaluate(project, models["float"], "tlt")
    onnx = _evaluate(project, exported / "model.onnx", "onnx")
    # Outputs agree to 1e-4 relative: the same detections (56 boxes of the untrained model
    # pass the NMS thresholds), the same AP.
    assert sum(c.num_detections for c in keras.classes) > 0
    assert onnx.mean_average_precision == pytest.approx(keras.mean_average_precision, abs=1e-6)
    for mine, theirs in zip(onnx.classes, keras.classes, strict=True):
        assert mine.num_ground_truth == theirs.num_ground_truth > 0
        assert mine.num_detections == theirs.num_detections


def test_evaluate_qdq_onnx_runs(run_qat, exported, project):
    code, out, err = run_qat(
        "evaluate", "-e", project, "-m", exported / "model.qdq.onnx", "-f", "onnx"
    )
    assert code == 0, err
    assert "Mean average precision (in %)" in out
    result = _evaluate(project, exported / "model.qdq.onnx", "onnx")
    assert [c.num_ground_truth for c in result.classes] == [
        c.num_ground_truth for c in _evaluate(project, exported / "model.onnx", "onnx").classes
    ]

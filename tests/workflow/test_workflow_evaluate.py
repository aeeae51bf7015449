"""``qat evaluate`` and ``qat inference`` on a trained synthetic model, and scoring the
inference dumps with ``--predictions_dir`` (one evaluator for every engine)."""

import json

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def evaluated(trained_project, tmp_path_factory):
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate

    root, spec, results, _ = trained_project
    out = tmp_path_factory.mktemp("evaluate")
    result = run_evaluate(EvaluateOptions(spec_path=str(spec), model_path=str(
        results / "weights" / "model.hdf5"), results_dir=str(out), echo=lambda _: None))
    return out, result


def test_evaluate_equals_the_validation_of_the_last_epoch(trained_project, evaluated):
    _, _, _, trained = trained_project
    _, result = evaluated
    # The final model holds the weights validated after the last epoch.
    last = trained.validation[2]
    assert result.mean_average_precision == pytest.approx(last.mean_average_precision, abs=1e-9)
    for mine, theirs in zip(result.classes, last.classes, strict=True):
        assert mine.num_ground_truth == theirs.num_ground_truth > 0
        assert mine.num_detections == theirs.num_detections


def test_evaluate_writes_results_json_and_plot(evaluated):
    out, result = evaluated
    summary = json.loads((out / "results.json").read_text())
    assert summary["mean_average_precision"] == pytest.approx(result.mean_average_precision)
    assert set(summary["classes"]) == {"car", "person"}
    with Image.open(out / "precision_recall.png") as plot:
        assert plot.width > 300 and plot.height > 200


def test_evaluate_cli_prints_the_table(trained_project, run_qat):
    _, spec, results, _ = trained_project
    code, out, err = run_qat("evaluate", "-e", spec, "-m", results / "weights" / "model.hdf5")
    assert code == 0, err
    assert "| car " in out and "Mean average precision (in %)" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give -m/--model (or --predictions_dir to score detection files)"),
        (("--label_dir", "."), "--label_dir needs --predictions_dir"),
    ],
)
def test_evaluate_flag_errors_are_one_line(trained_project, run_qat, extra, message):
    _, spec, _, _ = trained_project
    code, _, err = run_qat("evaluate", "-e", spec, *extra)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def inferred(trained_project):
    from tao_qat.inference.run_inference import InferenceOptions, run_inference

    root, _, results, _ = trained_project
    out = root / "inference"
    found = run_inference(InferenceOptions(
        spec_path=str(root / "inference.txt"), image_path=str(root / "kitti" / "val" / "image_2"),
        results_dir=str(out), model_path=str(results / "weights" / "model.hdf5"),
        echo=lambda _: None))
    return out, found


def test_inference_writes_a_dump_and_an_annotated_image_per_image(trained_project, inferred):
    root, _, _, _ = trained_project
    out, found = inferred
    images = sorted(p.name for p in (root / "kitti" / "val" / "image_2").iterdir())
    assert sorted(p.name for p in (out / "images_annotated").iterdir()) == images
    assert sorted(p.stem for p in (out / "labels").iterdir()) == [n[:-4] for n in images]
    for path, detections in found:
        lines = (out / "labels" / f"{path.stem}.txt").read_text().splitlines()
        assert len(lines) == len(detections)
        for line in lines:
            fields = line.split()
            assert len(fields) == 16 and fields[0] in ("car", "person")


def test_inference_refuses_to_overwrite(trained_project, inferred, run_qat):
    root, _, results, _ = trained_project
    out, _ = inferred
    code, _, err = run_qat("inference", "-e", root / "inference.txt", "-i",
                           root / "kitti" / "val" / "image_2", "-r", out, "-m",
                           results / "weights" / "model.hdf5")
    assert code == 2 and "already exists (use --force to overwrite)" in err


def test_prediction_files_score_like_the_model(trained_project, evaluated, inferred, run_qat):
    """The same detections scored from KITTI dumps (original pixels = network pixels here)
    give the model's mAP, against the label folder and against the spec's validation set."""
    root, spec, _, _ = trained_project
    _, result = evaluated
    out, _ = inferred
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate

    for label_dir in (str(root / "kitti" / "val" / "label_2"), None):
        scored = run_evaluate(EvaluateOptions(
            spec_path=str(spec), predictions_dir=str(out / "labels"), label_dir=label_dir,
            echo=lambda _: None))
        assert scored.mean_average_precision == pytest.approx(
            result.mean_average_precision, abs=0.02)

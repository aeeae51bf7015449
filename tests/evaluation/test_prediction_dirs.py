"""Scoring KITTI prediction folders against KITTI label folders."""

import pytest

from tao_qat.common.detections import Detections
from tao_qat.common.errors import DataError
from tao_qat.evaluation.prediction_files import evaluate_prediction_dirs
from tao_qat.postprocessing.kitti_dump import write_kitti_detections

ZEROS = "0.00 0.00 0.00 0.00 0.00 0.00 0.00"


def label(name, box):
    return f"{name} 0.00 0 0.00 {' '.join(str(v) for v in box)} {ZEROS}\n"


@pytest.fixture
def folders(tmp_path):
    """labels: a (2 cars + DontCare + 1 degenerate car), b (1 car), c (empty).
    predictions (written by the dump writer): a (1 hit, 1 miss), c (1 det), d (no label)."""
    labels, predictions = tmp_path / "labels", tmp_path / "predictions"
    labels.mkdir()
    (labels / "a.txt").write_text(
        label("Car", (0, 0, 10, 10))
        + label("car", (100, 100, 140, 130))
        + label("DontCare", (50, 50, 60, 60))
        + label("Car", (5, 5, 5.5, 20))
    )
    (labels / "b.txt").write_text(label("Car", (10, 10, 50, 50)))
    (labels / "c.txt").write_text("")
    names = ["car"]
    write_kitti_detections(
        predictions / "a.txt",
        Detections([[0, 0, 10, 10], [200, 0, 220, 20]], [0.9, 0.8], [0, 0]),
        names,
    )
    write_kitti_detections(predictions / "c.txt", Detections([[0, 0, 5, 5]], [0.7], [0]), names)
    write_kitti_detections(predictions / "d.txt", Detections([[0, 0, 5, 5]], [0.99], [0]), names)
    return predictions, labels


def test_scores_the_label_set(folders):
    predictions, labels = folders
    result = evaluate_prediction_dirs(predictions, labels, ["car"], iou_thresholds=0.5)
    car = result["car"]
    # 3 GT (a: 2, b: 1; DontCare unmapped, degenerate box dropped). Ranked detections:
    # 0.9 TP (a), 0.8 FP (a), 0.7 FP (c, no objects); d.txt is not scored.
    # precision [1, 1/2, 1/3], recall [1/3] * 3: AP = 1/3 * 1
    assert car.num_ground_truth == 3
    assert car.true_positive.tolist() == [True, False, False]
    assert car.average_precision == pytest.approx(1 / 3)
    assert result.metadata == {
        "images": 3,
        "missing_prediction_files": 1,
        "missing_prediction_examples": ["b"],
        "predictions_without_labels": 1,
        "predictions_without_labels_examples": ["d"],
        "skipped_degenerate_labels": 1,
        "unmapped_label_classes": {"dontcare": 1},
        "unmapped_prediction_classes": {},
    }


def test_class_mapping_and_unknown_prediction_classes(folders):
    predictions, labels = folders
    (predictions / "b.txt").write_text(
        "auto 0.00 0 0.00 10.0 10.0 50.0 50.0 " + ZEROS + " 0.600\n"
        "bike 0.00 0 0.00 10.0 10.0 50.0 50.0 " + ZEROS + " 0.500\n"
    )
    result = evaluate_prediction_dirs(
        predictions, labels, ["Vehicle"], class_mapping={"CAR": "vehicle", "auto": "Vehicle"}
    )
    vehicle = result["Vehicle"]
    # ranked 0.9 TP (a), 0.8 FP (a), 0.7 FP (c), 0.6 TP (b, "auto" mapped): recall 2/3
    assert vehicle.true_positive.tolist() == [True, False, False, True]
    assert result.metadata["unmapped_prediction_classes"] == {"bike": 1}
    # AP = 1/3 * 1 + 1/3 * max(2/4) = 1/2
    assert vehicle.average_precision == pytest.approx(0.5)


def test_errors_name_the_file(tmp_path, folders):
    predictions, labels = folders
    (predictions / "a.txt").write_text("car 0.00 0 0.00 1 2 3 4 " + ZEROS + "\n")
    with pytest.raises(DataError, match=r"a.txt:1: expected 16 whitespace-separated fields"):
        evaluate_prediction_dirs(predictions, labels, ["car"])
    with pytest.raises(DataError, match="label folder not found"):
        evaluate_prediction_dirs(predictions, tmp_path / "nope", ["car"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt label files"):
        evaluate_prediction_dirs(predictions, tmp_path / "empty", ["car"])

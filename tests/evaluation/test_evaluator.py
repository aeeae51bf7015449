"""EvaluationSettings from the spec, results structure and mAP."""

import math

import pytest
from google.protobuf import text_format

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.common.errors import SpecError
from tao_qat.evaluation.evaluator import EvaluationSettings, evaluate_detections
from tao_qat.evaluation.matching import BoxFilter
from tao_qat.spec.loader import load_experiment_spec
from tao_qat.spec.proto.evaluation_config_pb2 import EvaluationConfig


def evaluation_config(text):
    return text_format.Parse(text, EvaluationConfig())


def test_settings_from_spec_file(test_data):
    spec = load_experiment_spec(
        test_data / "specs" / "detectnet_v2_retrain_resnet18_kitti_qat.txt", validate=False
    )
    settings = EvaluationSettings.from_spec(spec.evaluation_config, ["car", "pedestrian"])
    assert settings.iou_thresholds == pytest.approx({"car": 0.7, "pedestrian": 0.5})
    assert settings.box_filters["car"] == BoxFilter(20, 9999, 10, 9999)
    expected_mode = {0: "sample", 1: "integrate"}[spec.evaluation_config.average_precision_mode]
    assert settings.ap_mode == expected_mode


def test_settings_modes_and_errors():
    base = """
        minimum_detection_ground_truth_overlap { key: "car" value: 0.5 }
        evaluation_box_config { key: "car" value {
            minimum_height: 2 maximum_height: 100 minimum_width: 2 maximum_width: 100 } }
    """
    assert EvaluationSettings.from_spec(evaluation_config(base), ["car"]).ap_mode == "sample"
    integrate = evaluation_config(base + "average_precision_mode: INTEGRATE")
    assert EvaluationSettings.from_spec(integrate, ["car"]).ap_mode == "integrate"
    with pytest.raises(
        SpecError,
        match=r"evaluation_config.minimum_detection_ground_truth_overlap: missing class 'bus'",
    ):
        EvaluationSettings.from_spec(evaluation_config(base), ["car", "bus"])
    no_max = evaluation_config("""
        minimum_detection_ground_truth_overlap { key: "car" value: 0.5 }
        evaluation_box_config { key: "car" value { minimum_height: 2 maximum_width: 100 } }
    """)
    with pytest.raises(
        SpecError, match=r"evaluation_box_config\['car'\].maximum_height: 0 must be > 0"
    ):
        EvaluationSettings.from_spec(no_max, ["car"])


def test_settings_evaluate_applies_filters():
    config = evaluation_config("""
        minimum_detection_ground_truth_overlap { key: "car" value: 0.5 }
        evaluation_box_config { key: "car" value {
            minimum_height: 20 maximum_height: 100 minimum_width: 1 maximum_width: 100 } }
        average_precision_mode: INTEGRATE
    """)
    settings = EvaluationSettings.from_spec(config, ["car"])
    # the 10-pixel-high GT is filtered out: only the 30-pixel one counts, and is found
    ground_truth = [GroundTruth([[0, 0, 10, 10], [0, 50, 30, 80]], [0, 0])]
    detections = [Detections([[0, 50, 30, 80]], [0.4], [0])]
    result = settings.evaluate(detections, ground_truth, ["car"])
    assert result["car"].num_ground_truth == 1
    assert result.mean_average_precision == 1.0


def test_result_summary_and_class_without_ground_truth():
    ground_truth = [GroundTruth([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0])]
    detections = [
        Detections([[0, 0, 10, 10], [50, 50, 60, 60], [20, 0, 30, 10]], [0.9, 0.8, 0.7], [0, 0, 0])
    ]
    result = evaluate_detections(detections, ground_truth, ["car", "bus"], 0.5)
    car = result["car"]
    # ranked TP, FP, TP over 2 GT: AP = 0.5 * 1 + 0.5 * 2/3 = 5/6
    assert car.average_precision == pytest.approx(5 / 6)
    assert result["bus"].average_precision == 0.0  # no GT: 0, as TAO
    assert result.mean_average_precision == pytest.approx(5 / 12)
    # best F1: after 3 detections P = 2/3, R = 1 -> F1 = 0.8; after 1: P = 1, R = 0.5 -> 0.667
    assert car.best_f1() == (pytest.approx(0.8), pytest.approx(0.7))
    summary = result.summary()
    assert summary["classes"]["car"] == {
        "average_precision": pytest.approx(5 / 6),
        "iou_threshold": 0.5,
        "num_ground_truth": 2,
        "num_detections": 3,
        "true_positives": 2,
        "false_positives": 1,
        "max_recall": 1.0,
        "best_f1": pytest.approx(0.8),
        "best_f1_confidence": pytest.approx(0.7),
    }
    assert summary["classes"]["bus"]["best_f1_confidence"] is None
    assert summary["ap_mode"] == "integrate"
    assert not math.isnan(summary["mean_average_precision"])


def test_empty_dataset():
    result = evaluate_detections([], [], ["car"], 0.5, ap_mode="sample")
    assert result["car"].num_detections == 0 and result.mean_average_precision == 0.0

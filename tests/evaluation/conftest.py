"""Fixtures for evaluation tests: a small two-class result with hand-known numbers."""

import pytest

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.evaluation.evaluator import evaluate_detections


@pytest.fixture
def two_class_result():
    """car: ranked TP, FP, TP over 2 GT (AP 5/6); person: 1 GT, 1 perfect detection (AP 1)."""
    ground_truth = [
        GroundTruth([[0, 0, 10, 10], [20, 0, 30, 10], [40, 40, 60, 80]], [0, 0, 1]),
    ]
    detections = [
        Detections(
            [[0, 0, 10, 10], [50, 50, 60, 60], [20, 0, 30, 10], [40, 40, 60, 80]],
            [0.9, 0.8, 0.7, 0.95],
            [0, 0, 0, 1],
        )
    ]
    return evaluate_detections(detections, ground_truth, ["car", "person"], 0.5)

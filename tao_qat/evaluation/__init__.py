"""Evaluation (numpy): matching, Pascal VOC AP, reports and precision/recall plots."""

from tao_qat.evaluation.average_precision import AP_MODES, average_precision
from tao_qat.evaluation.evaluator import (
    ClassResult,
    EvaluationResult,
    EvaluationSettings,
    evaluate_detections,
)
from tao_qat.evaluation.matching import BoxFilter
from tao_qat.evaluation.prediction_files import evaluate_prediction_dirs
from tao_qat.evaluation.report import format_table, plot_precision_recall, write_results_json

__all__ = [
    "AP_MODES",
    "BoxFilter",
    "ClassResult",
    "EvaluationResult",
    "EvaluationSettings",
    "average_precision",
    "evaluate_detections",
    "evaluate_prediction_dirs",
    "format_table",
    "plot_precision_recall",
    "write_results_json",
]

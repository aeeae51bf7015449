"""Score per-image detections against ground truth: per-class AP, PR curves and mAP (§5).

Per class: ground truths with class -1 are skipped; ground truths and detections outside the
class's box filter are removed (not "ignored"); coordinates are rounded to integers after
filtering; then ``matching.match_class`` and ``average_precision``. mAP is the plain mean over
classes (a class without ground truth has AP 0, as in TAO).
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from tao_qat.common.errors import SpecError
from tao_qat.evaluation.average_precision import AP_MODES, average_precision
from tao_qat.evaluation.matching import BoxFilter, match_class, round_boxes

logger = logging.getLogger(__name__)

# EvaluationConfig.AP_MODE enum name -> our mode name.
_SPEC_AP_MODES = {"SAMPLE": "sample", "INTEGRATE": "integrate"}


@dataclass
class ClassResult:
    """Evaluation of one class. Arrays are over its detections by descending confidence.

    Attributes:
        name: class name. average_precision: AP in [0, 1]. num_ground_truth: GT count after
            filtering. iou_threshold: IoU needed for a match.
        scores: float32 [K]; true_positive: bool [K]; precision, recall: float64 [K]
            cumulative after each detection (recall is 0 everywhere without ground truth).
    """

    name: str
    average_precision: float
    num_ground_truth: int
    iou_threshold: float
    scores: np.ndarray
    true_positive: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    @property
    def num_detections(self):
        return len(self.scores)

    @property
    def num_true_positives(self):
        return int(self.true_positive.sum())

    @property
    def num_false_positives(self):
        return self.num_detections - self.num_true_positives

    @property
    def max_recall(self):
        return float(self.recall[-1]) if len(self.recall) else 0.0

    def best_f1(self):
        """(best F1 over all confidence cut-offs, the confidence of that cut-off or None)."""
        denominator = self.precision + self.recall
        f1 = np.zeros_like(denominator)
        np.divide(2 * self.precision * self.recall, denominator, out=f1, where=denominator > 0)
        if not len(f1) or f1.max() <= 0:
            return 0.0, None
        best = int(np.argmax(f1))
        return float(f1[best]), float(self.scores[best])


@dataclass
class EvaluationResult:
    """Per-class results (output class order), the AP mode and free-form metadata."""

    classes: list
    ap_mode: str
    metadata: dict = field(default_factory=dict)

    @property
    def mean_average_precision(self):
        if not self.classes:
            return 0.0
        return float(np.mean([c.average_precision for c in self.classes]))

    def __getitem__(self, name):
        for result in self.classes:
            if result.name == name:
                return result
        raise KeyError(name)

    def summary(self):
        """JSON-ready dict: mAP, AP mode, per-class figures (fractions, not %) and metadata."""
        classes = {}
        for c in self.classes:
            f1, f1_score = c.best_f1()
            classes[c.name] = {
                "average_precision": c.average_precision,
                "iou_threshold": c.iou_threshold,
                "num_ground_truth": c.num_ground_truth,
                "num_detections": c.num_detections,
                "true_positives": c.num_true_positives,
                "false_positives": c.num_false_positives,
                "max_recall": c.max_recall,
                "best_f1": f1,
                "best_f1_confidence": f1_score,
            }
        return {
            "mean_average_precision": self.mean_average_precision,
            "ap_mode": self.ap_mode,
            "classes": classes,
            "metadata": self.metadata,
        }


def evaluate_detections(
    detections, ground_truth, class_names, iou_thresholds, box_filters=None, ap_mode="integrate"
):
    """Match detections to ground truth per class and compute AP / mAP.

    Args:
        detections: list of Detections, one per image (boxes in the same frame as the GT).
        ground_truth: list of GroundTruth, same images in the same order.
        class_names: names of the class ids (output order).
        iou_thresholds: float for every class, or {class name: float} covering every class.
        box_filters: None, or {class name: BoxFilter} (classes absent from it are unfiltered).
        ap_mode: "sample" (VOC2007 11-point), "integrate" (VOC2010+ area) or "integrate_tao".
    Returns:
        EvaluationResult.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection lists for {len(ground_truth)} images")
    if ap_mode not in AP_MODES:
        raise ValueError(f"unknown AP mode {ap_mode!r}; valid: {', '.join(AP_MODES)}")
    class_names = list(class_names)
    thresholds = _thresholds(iou_thresholds, class_names)
    box_filters = box_filters or {}

    det_images, det_boxes, det_scores, det_classes = _flatten(detections, with_scores=True)
    gt_images, gt_boxes, _, gt_classes = _flatten(ground_truth, with_scores=False)
    for kind, classes in (("detection", det_classes), ("ground truth", gt_classes)):
        low = -1 if kind == "ground truth" else 0
        if len(classes) and (classes.min() < low or classes.max() >= len(class_names)):
            raise ValueError(f"{kind} class id out of range for {len(class_names)} classes")

    results = []
    for class_id, name in enumerate(class_names):
        box_filter = box_filters.get(name)
        det = _select(det_classes == class_id, det_boxes, box_filter)
        gt = _select(gt_classes == class_id, gt_boxes, box_filter)
        order, true_positive = match_class(
            det_images[det],
            det_scores[det],
            round_boxes(det_boxes[det]),
            gt_images[gt],
            round_boxes(gt_boxes[gt]),
            thresholds[name],
        )
        results.append(
            _class_result(
                name, det_scores[det][order], true_positive, len(gt), thresholds[name], ap_mode
            )
        )
    return EvaluationResult(results, ap_mode)


def _thresholds(iou_thresholds, class_names):
    if isinstance(iou_thresholds, dict):
        missing = [name for name in class_names if name not in iou_thresholds]
        if missing:
            raise ValueError(f"no IoU threshold for class(es) {', '.join(missing)}")
        return {name: float(iou_thresholds[name]) for name in class_names}
    return {name: float(iou_thresholds) for name in class_names}


def _flatten(per_image, with_scores):
    counts = np.array([len(item) for item in per_image], np.int64)
    images = np.repeat(np.arange(len(per_image)), counts)
    if not len(per_image):
        return images, np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.int32)
    boxes = np.concatenate([item.boxes for item in per_image]).reshape(-1, 4)
    classes = np.concatenate([item.class_ids for item in per_image])
    scores = np.concatenate([item.scores for item in per_image]) if with_scores else None
    return images, boxes, scores, classes


def _select(class_mask, boxes, box_filter):
    """Indices of the boxes of one class that pass its filter (on unrounded coordinates)."""
    if box_filter is not None:
        class_mask = class_mask & box_filter.mask(boxes)
    return np.flatnonzero(class_mask)


def _class_result(name, scores, true_positive, num_gt, iou_threshold, ap_mode):
    tp = np.cumsum(true_positive)
    ranks = np.arange(1, len(true_positive) + 1)
    precision = tp / ranks if len(ranks) else np.zeros(0)
    if num_gt == 0:
        logger.warning("class %s has no ground truth: AP 0", name)
        recall = np.zeros(len(true_positive))
        ap = 0.0
    else:
        recall = tp / num_gt
        ap = average_precision(precision, recall, ap_mode)
    return ClassResult(name, ap, num_gt, iou_threshold, scores, true_positive, precision, recall)


@dataclass(frozen=True)
class EvaluationSettings:
    """Evaluation settings as plain values (``evaluate_detections`` keyword arguments)."""

    iou_thresholds: dict
    box_filters: dict | None = None
    ap_mode: str = "integrate"

    @classmethod
    def from_spec(cls, evaluation_config, class_names):
        """From an Experiment ``evaluation_config``; SpecError names a missing class entry.

        ``minimum_detection_ground_truth_overlap`` and ``evaluation_box_config`` need every
        class; ``average_precision_mode`` SAMPLE (the proto3 default) or INTEGRATE.
        """
        overlaps = evaluation_config.minimum_detection_ground_truth_overlap
        box_configs = evaluation_config.evaluation_box_config
        thresholds, filters = {}, {}
        for name in class_names:
            for field_name, entries in (
                ("minimum_detection_ground_truth_overlap", overlaps),
                ("evaluation_box_config", box_configs),
            ):
                if name not in entries:
                    raise SpecError(
                        f"evaluation_config.{field_name}: missing class '{name}' "
                        "(every target class needs an entry)"
                    )
            thresholds[name] = overlaps[name]
            if not 0.0 <= thresholds[name] <= 1.0:
                raise SpecError(
                    f"evaluation_config.minimum_detection_ground_truth_overlap['{name}']: "
                    f"{thresholds[name]} is not in [0, 1]"
                )
            filters[name] = BoxFilter.from_spec(
                box_configs[name], f"evaluation_config.evaluation_box_config['{name}']"
            )
        enum = evaluation_config.DESCRIPTOR.fields_by_name["average_precision_mode"].enum_type
        mode_name = enum.values_by_number[evaluation_config.average_precision_mode].name
        return cls(thresholds, filters, _SPEC_AP_MODES[mode_name])

    def evaluate(self, detections, ground_truth, class_names):
        """``evaluate_detections`` with these settings."""
        return evaluate_detections(
            detections,
            ground_truth,
            class_names,
            self.iou_thresholds,
            self.box_filters,
            self.ap_mode,
        )

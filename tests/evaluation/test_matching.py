"""TAO matching (§5): IoU +1 convention, duplicates, no fallback, filters, rounding."""

import numpy as np
import pytest

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.evaluation.evaluator import evaluate_detections
from tao_qat.evaluation.matching import BoxFilter, match_class, round_boxes


def evaluate(detections, ground_truth, threshold=0.5, **kwargs):
    """Single-class evaluation; returns the ClassResult."""
    return evaluate_detections(detections, ground_truth, ["car"], threshold, **kwargs)["car"]


def dets(boxes, scores):
    return Detections(boxes, scores, [0] * len(scores))


def gts(boxes, classes=None):
    return GroundTruth(boxes, [0] * len(boxes) if classes is None else classes)


def test_iou_plus_one_pixel_convention():
    # IoU(+1) of (0,0,9,9) and (5,0,14,9) = 50/150 = 1/3; without +1 it would be 36/126 = 0.286
    result = evaluate([dets([[0, 0, 9, 9]], [0.9])], [gts([[5, 0, 14, 9]])], threshold=0.3)
    assert result.true_positive.tolist() == [True]
    result = evaluate([dets([[0, 0, 9, 9]], [0.9])], [gts([[5, 0, 14, 9]])], threshold=0.34)
    assert result.true_positive.tolist() == [False]


def test_duplicate_is_false_positive_even_with_higher_iou():
    gt = [[0, 0, 10, 10]]
    # ranked: 0.9 (IoU(+1) = 7*11 / (121 + 121 - 77) = 0.47 >= 0.3: TP), then 0.8 (IoU 1: dup)
    result = evaluate([dets([[0, 0, 10, 10], [4, 0, 14, 10]], [0.8, 0.9])], [gts(gt)], 0.3)
    np.testing.assert_allclose(result.scores, [0.9, 0.8])
    assert result.true_positive.tolist() == [True, False]
    assert (result.num_true_positives, result.num_false_positives) == (1, 1)


def test_no_fallback_to_the_next_best_ground_truth():
    # G1 = (0,0,10,10), G2 = (2,0,12,10). Both detections prefer G1; the second is a
    # duplicate and does not fall back to G2 although its IoU with G2 is 0.83 > 0.5.
    ground_truth = [gts([[0, 0, 10, 10], [2, 0, 12, 10]])]
    detections = [dets([[0, 0, 10, 10], [1, 0, 11, 10]], [0.9, 0.8])]
    result = evaluate(detections, ground_truth)
    assert result.true_positive.tolist() == [True, False]
    assert result.max_recall == 0.5


def test_iou_ties_take_the_first_ground_truth():
    # the detection overlaps G1 and G2 equally; it takes G1, so a later exact hit on G2 is TP
    ground_truth = [gts([[0, 0, 9, 9], [10, 0, 19, 9]])]
    detections = [dets([[5, 0, 14, 9], [10, 0, 19, 9]], [0.9, 0.8])]
    result = evaluate(detections, ground_truth, threshold=0.1)
    assert result.true_positive.tolist() == [True, True]


def test_equal_scores_keep_input_order():
    # same score, same GT: the first in (image, detection) order wins
    detections = [dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5])]
    result = evaluate(detections, [gts([[0, 0, 10, 10]])])
    assert result.true_positive.tolist() == [True, False]


def test_images_classes_and_ignored_ground_truth():
    ground_truth = [
        GroundTruth([[0, 0, 10, 10], [20, 20, 30, 30]], [0, -1]),  # -1: unmapped, skipped
        GroundTruth([[0, 0, 10, 10]], [1]),  # class 1 only
    ]
    detections = [
        Detections([[20, 20, 30, 30], [0, 0, 10, 10]], [0.7, 0.6], [0, 0]),
        Detections([[0, 0, 10, 10]], [0.9], [0]),  # right place, wrong class
    ]
    result = evaluate_detections(detections, ground_truth, ["car", "truck"], 0.5)
    car, truck = result.classes
    # car ranked: 0.9 (image 1, no car GT) FP, 0.7 (on the ignored box) FP, 0.6 TP
    assert car.true_positive.tolist() == [False, False, True]
    assert car.num_ground_truth == 1
    np.testing.assert_allclose(car.precision, [0, 0, 1 / 3])
    assert truck.num_ground_truth == 1 and truck.num_detections == 0
    assert truck.average_precision == 0.0


def test_box_filters_remove_ground_truth_and_detections():
    box_filter = BoxFilter(minimum_height=5, minimum_width=5, maximum_height=50)
    ground_truth = [gts([[0, 0, 10, 10], [20, 20, 23, 30], [0, 0, 10, 60]])]
    detections = [dets([[0, 0, 10, 10], [20, 20, 23, 30], [40, 40, 44, 44]], [0.9, 0.8, 0.7])]
    result = evaluate(detections, ground_truth, box_filters={"car": box_filter})
    # GT: (3 wide) and (60 high) removed -> 1 GT; detections: 3-wide and 4x4 removed
    assert result.num_ground_truth == 1
    assert result.true_positive.tolist() == [True]
    assert result.average_precision == 1.0
    # width exactly at the bounds is kept: min <= w <= max
    assert BoxFilter(5, 10, 5, 10).mask([[0, 0, 5, 10], [0, 0, 4, 10]]).tolist() == [True, False]


def test_coordinates_are_rounded_half_to_even():
    np.testing.assert_array_equal(round_boxes([[0.5, 1.5, 2.5, 3.5]]), [[0, 2, 2, 4]])
    # (0.5, 0.4, 10.5, 9.6) rounds to (0, 0, 10, 10): IoU 1 with the GT -> TP at threshold 1
    result = evaluate([dets([[0.5, 0.4, 10.5, 9.6]], [0.9])], [gts([[0, 0, 10, 10]])], 1.0)
    assert result.true_positive.tolist() == [True]


def test_per_class_thresholds_and_errors():
    detections = [Detections([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.9], [0, 1])]
    ground_truth = [GroundTruth([[0, 0, 10, 12], [0, 0, 10, 12]], [0, 1])]
    # IoU(+1) = 121/143 = 0.846
    result = evaluate_detections(detections, ground_truth, ["a", "b"], {"a": 0.8, "b": 0.9})
    assert [c.num_true_positives for c in result.classes] == [1, 0]
    assert result.mean_average_precision == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no IoU threshold for class"):
        evaluate_detections(detections, ground_truth, ["a", "b"], {"a": 0.5})
    with pytest.raises(ValueError, match="class id out of range"):
        evaluate_detections(detections, ground_truth, ["a"], 0.5)
    with pytest.raises(ValueError, match="1 detection lists for 2 images"):
        evaluate_detections(detections, ground_truth * 2, ["a", "b"], 0.5)


def reference_match(det_images, det_scores, det_boxes, gt_images, gt_boxes, threshold):
    """Direct loop version of TAO's matching, to cross-check the vectorized one."""
    order = sorted(range(len(det_scores)), key=lambda k: -det_scores[k])  # stable
    matched = set()
    verdicts = []
    for k in order:
        candidates = [g for g in range(len(gt_images)) if gt_images[g] == det_images[k]]
        if not candidates:
            verdicts.append(False)
            continue
        ious = []
        for g in candidates:
            a, b = det_boxes[k], gt_boxes[g]
            iw = max(min(a[2], b[2]) - max(a[0], b[0]) + 1, 0)
            ih = max(min(a[3], b[3]) - max(a[1], b[1]) + 1, 0)
            inter = iw * ih
            area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
            area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
            ious.append(inter / (area_a + area_b - inter))
        best = int(np.argmax(ious))
        if ious[best] < threshold or candidates[best] in matched:
            verdicts.append(False)
        else:
            matched.add(candidates[best])
            verdicts.append(True)
    return order, verdicts


@pytest.mark.parametrize("seed", range(5))
def test_vectorized_matching_equals_the_loop(seed):
    rng = np.random.default_rng(seed)
    num_images = 30
    gt_images = np.sort(rng.integers(0, num_images, 80))
    xy = rng.integers(0, 60, (80, 2))
    gt_boxes = np.concatenate([xy, xy + rng.integers(5, 30, (80, 2))], axis=1).astype(float)
    source = rng.integers(0, 80, 200)  # detections near a GT, 1 in 5 in another image
    det_images = np.where(
        rng.random(200) < 0.2, rng.integers(0, num_images, 200), gt_images[source]
    )
    det_boxes = gt_boxes[source] + rng.integers(-6, 7, (200, 4))
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2])
    det_scores = np.round(rng.random(200), 2).astype(np.float32)  # with ties
    order, tp = match_class(det_images, det_scores, det_boxes, gt_images, gt_boxes, 0.4)
    ref_order, ref_tp = reference_match(
        det_images, det_scores.tolist(), det_boxes, gt_images, gt_boxes, 0.4
    )
    assert order.tolist() == ref_order
    assert tp.tolist() == ref_tp
    assert 10 < tp.sum() < 190  # a mixed case, not trivially all TP or all FP

"""Box filters and TAO's greedy detection-to-ground-truth matching, vectorized (§5).

Matching of one class: detections sorted by descending confidence (stable); each one takes
the same-class ground truth of its image with the highest IoU (+1 pixel convention, first GT on
ties); IoU below the class threshold -> false positive; otherwise true positive if that GT is
not matched yet, else false positive (a duplicate; there is no fallback to the next-best GT).

Because a detection's best GT does not depend on earlier matches, the whole class is matched
without a Python loop: the best GT of every detection comes from one pass over all
(detection, GT of the same image) pairs, and a GT's first claimant in confidence order is the
true positive.
"""

import math
from dataclasses import dataclass

import numpy as np

from tao_qat.common.errors import SpecError
from tao_qat.postprocessing.boxes import elementwise_iou

# TAO's evaluation IoU counts border pixels: widths and heights get +1.
IOU_BORDER = 1.0


@dataclass(frozen=True)
class BoxFilter:
    """Keep boxes with min_height <= h <= max_height and min_width <= w <= max_width.

    ``w = x2 - x1`` and ``h = y2 - y1`` in the pixels of the evaluated frame (TAO: network input).
    """

    minimum_height: float = 0.0
    maximum_height: float = math.inf
    minimum_width: float = 0.0
    maximum_width: float = math.inf

    def mask(self, boxes):
        """bool [N]: which of float [N, 4] boxes pass the filter."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        width = boxes[:, 2] - boxes[:, 0]
        height = boxes[:, 3] - boxes[:, 1]
        return (
            (height >= self.minimum_height)
            & (height <= self.maximum_height)
            & (width >= self.minimum_width)
            & (width <= self.maximum_width)
        )

    @classmethod
    def from_spec(cls, box_config, field_path="evaluation_box_config"):
        """From an ``EvaluationConfig.EvaluationBoxConfig``; SpecError on empty ranges."""
        for name in ("height", "width"):
            low = getattr(box_config, f"minimum_{name}")
            high = getattr(box_config, f"maximum_{name}")
            if high <= 0 or high < low:
                raise SpecError(
                    f"{field_path}.maximum_{name}: {high} must be > 0 and >= minimum_{name} "
                    f"({low}), or every box is filtered out"
                )
        return cls(
            box_config.minimum_height,
            box_config.maximum_height,
            box_config.minimum_width,
            box_config.maximum_width,
        )


def round_boxes(boxes):
    """Round coordinates to integers as TAO does (Python ``round``: halves to even)."""
    return np.round(np.asarray(boxes, np.float64))


def match_class(det_images, det_scores, det_boxes, gt_images, gt_boxes, iou_threshold):
    """Greedy TAO matching of one class over a whole dataset.

    Args:
        det_images: int [D] image index of each detection.
        det_scores: float [D] confidences.
        det_boxes: float [D, 4] (x1, y1, x2, y2), already filtered and rounded.
        gt_images: int [G] image index of each ground truth, ascending.
        gt_boxes: float [G, 4], already filtered and rounded.
        iou_threshold: minimum IoU (+1 pixel convention) for a true positive.
    Returns:
        (order int [D], true_positive bool [D]): ``order`` sorts the detections by descending
        confidence (stable) and ``true_positive[k]`` is the verdict of detection ``order[k]``.
    """
    det_images = np.asarray(det_images, np.int64)
    gt_images = np.asarray(gt_images, np.int64)
    order = np.argsort(-np.asarray(det_scores), kind="stable")
    images = det_images[order]
    boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)[order]
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    num_dets = len(order)

    # Every (detection, GT of the same image) pair, grouped by detection, GTs ascending.
    first_gt = np.searchsorted(gt_images, images, side="left")
    counts = np.searchsorted(gt_images, images, side="right") - first_gt
    starts = np.cumsum(counts) - counts
    pair_det = np.repeat(np.arange(num_dets), counts)
    pair_gt = first_gt[pair_det] + np.arange(len(pair_det)) - starts[pair_det]
    iou = elementwise_iou(boxes[pair_det], gt_boxes[pair_gt], border=IOU_BORDER)

    # Highest IoU per detection, and the first GT that reaches it (np.argmax semantics).
    has_gt = counts > 0
    best_iou = np.full(num_dets, -np.inf)
    best_gt = np.full(num_dets, -1, np.int64)
    if len(pair_det):
        best_iou[has_gt] = np.maximum.reduceat(iou, starts[has_gt])
        reaches = np.flatnonzero(iou == best_iou[pair_det])
        first = np.ones(len(reaches), bool)
        first[1:] = pair_det[reaches[1:]] != pair_det[reaches[:-1]]
        best_gt[pair_det[reaches[first]]] = pair_gt[reaches[first]]

    # A GT's first claimant (in confidence order) above the threshold is the true positive.
    claims = np.flatnonzero(best_iou >= iou_threshold)
    _, first_claim = np.unique(best_gt[claims], return_index=True)
    true_positive = np.zeros(num_dets, bool)
    true_positive[claims[first_claim]] = True
    return order, true_positive

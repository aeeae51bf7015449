"""Clustering of one class's candidate cells in one image: DBSCAN, NMS and HYBRID (§4.1, §4.2).

Candidates are the grid cells whose coverage passed the threshold, each with its decoded box.

- DBSCAN (scikit-learn, metric precomputed): distance = 1 - IoU (continuous areas, +1e-5 in
  the union), ``sample_weight`` = coverage, so a core cell needs sum(cov) >= min_samples over
  its eps-neighbourhood. A cluster's box is the coverage-weighted mean of its members; its
  confidence is sum(cov) ("aggregate_cov") or (mean - min) / (max - min) ("mean_cov").
- NMS: greedy, by descending coverage, suppressing IoU (+1 pixel convention) > threshold;
  confidence = the cell's coverage.
- HYBRID: DBSCAN, then NMS over the raw member cells of the clusters that survived.
"""

import numpy as np

from tao_qat.postprocessing.boxes import pairwise_iou

# TAO's evaluation-path DBSCAN IoU adds this to the union (the inference path adds 0.01).
DBSCAN_IOU_EPS = 1e-5
# TAO's inference path adds this to dbscan_eps; it also keeps eps > 0 as scikit-learn requires.
DBSCAN_EPS_BIAS = 1e-12


def dbscan_labels(boxes, covs, eps, min_samples=1.0):
    """DBSCAN cluster labels of candidate cells.

    Args:
        boxes: float [N, 4] in input pixels; covs: float [N] coverage (the sample weights).
        eps: neighbourhood radius in 1 - IoU units.
        min_samples: a core cell needs sum(cov) >= min_samples in its neighbourhood (itself
            included); non-integers are served by scaling the weights by 1 / min_samples.
    Returns:
        int [N] labels, -1 = noise.
    """
    distance = 1.0 - pairwise_iou(boxes, boxes, eps=DBSCAN_IOU_EPS)
    np.fill_diagonal(distance, 0.0)
    np.maximum(distance, 0.0, out=distance)
    weights = np.asarray(covs, np.float64)
    if float(min_samples).is_integer():
        min_samples = int(min_samples)
    else:
        weights, min_samples = weights / min_samples, 1
    from sklearn.cluster import DBSCAN  # lazy: importing scikit-learn takes about 1.5 s

    model = DBSCAN(eps=eps + DBSCAN_EPS_BIAS, min_samples=min_samples, metric="precomputed")
    return model.fit_predict(distance, sample_weight=weights)


def aggregate_clusters(boxes, covs, labels, confidence_model="aggregate_cov"):
    """Per cluster: coverage-weighted mean box and confidence.

    Args:
        boxes: float [N, 4]; covs: float [N]; labels: int [N] from ``dbscan_labels``.
    Returns:
        (boxes float64 [K, 4], confidences float64 [K], member_cluster int [N]) where
        member_cluster[n] is the row of cell n's cluster, or -1 for noise.
    """
    member = labels >= 0
    _, inverse = np.unique(labels[member], return_inverse=True)
    weights = np.asarray(covs, np.float64)[member]
    members = np.asarray(boxes, np.float64)[member]
    count = np.bincount(inverse)
    total = np.bincount(inverse, weights=weights, minlength=len(count))
    weighted = np.stack(
        [
            np.bincount(inverse, weights=weights * members[:, k], minlength=len(count))
            for k in range(4)
        ],
        axis=1,
    )
    mean_boxes = weighted / total[:, None]
    if confidence_model == "aggregate_cov":
        confidence = total
    elif confidence_model == "mean_cov":
        low = np.full(len(count), np.inf)
        high = np.full(len(count), -np.inf)
        np.minimum.at(low, inverse, weights)
        np.maximum.at(high, inverse, weights)
        spread = high - low
        # TAO divides 0 by 0 (NaN, dropped by every threshold) when max == min; we give 0.
        confidence = np.zeros_like(total)
        np.divide(total / count - low, spread, out=confidence, where=spread > 0)
    else:
        raise ValueError(f"unknown confidence_model {confidence_model!r}")
    member_cluster = np.full(len(labels), -1, np.int64)
    member_cluster[member] = inverse
    return mean_boxes, confidence, member_cluster


def nms_keep(boxes, scores, iou_threshold, score_threshold=0.0):
    """Greedy NMS (TAO's "original NMS", +1 pixel IoU convention).

    Cells with score <= score_threshold are dropped first (they could only suppress cells
    that the threshold drops anyway, so the result equals TAO's suppress-then-threshold).

    Args:
        boxes: float [N, 4]; scores: float [N].
        iou_threshold: a kept box suppresses lower-scored boxes with IoU > this.
    Returns:
        int [K] indices into boxes, by descending score (ties keep input order).
    """
    scores = np.asarray(scores)
    candidates = np.flatnonzero(scores > score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    iou = pairwise_iou(boxes[order], boxes[order], border=1.0)
    suppressed = np.zeros(len(order), bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[np.asarray(keep, np.int64)]


def cluster_cells(boxes, covs, settings):
    """Turn one class's candidate cells of one image into detections.

    Args:
        boxes: float [N, 4] decoded candidate boxes in input pixels.
        covs: float [N] their coverage (already above ``settings.coverage_threshold``).
        settings: ClusteringSettings of the class.
    Returns:
        (boxes float32 [K, 4], confidences float32 [K]) by descending confidence; filtered by
        ``minimum_height`` (height > it) and ``confidence_threshold`` (confidence >= it).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    covs = np.asarray(covs, np.float64).reshape(-1)
    if len(covs) == 0:
        out_boxes, out_scores = boxes, covs
    elif settings.algorithm == "nms":
        keep = nms_keep(boxes, covs, settings.nms_iou_threshold, settings.nms_confidence_threshold)
        out_boxes, out_scores = boxes[keep], covs[keep]
    else:
        labels = dbscan_labels(boxes, covs, settings.dbscan_eps, settings.dbscan_min_samples)
        mean_boxes, confidence, member_cluster = aggregate_clusters(
            boxes, covs, labels, settings.confidence_model
        )
        heights = mean_boxes[:, 3] - mean_boxes[:, 1]
        survives = (heights > settings.minimum_height) & (
            confidence > settings.dbscan_confidence_threshold
        )
        if settings.algorithm == "dbscan":
            out_boxes, out_scores = mean_boxes[survives], confidence[survives]
        else:  # hybrid: NMS over the raw member cells of the surviving clusters.
            members = member_cluster >= 0
            members[members] = survives[member_cluster[members]]
            member_boxes, member_covs = boxes[members], covs[members]
            keep = nms_keep(
                member_boxes,
                member_covs,
                settings.nms_iou_threshold,
                settings.nms_confidence_threshold,
            )
            out_boxes, out_scores = member_boxes[keep], member_covs[keep]
    heights = out_boxes[:, 3] - out_boxes[:, 1]
    keep = (heights > settings.minimum_height) & (out_scores >= settings.confidence_threshold)
    out_boxes, out_scores = out_boxes[keep], out_scores[keep]
    order = np.argsort(-out_scores, kind="stable")
    return out_boxes[order].astype(np.float32), out_scores[order].astype(np.float32)

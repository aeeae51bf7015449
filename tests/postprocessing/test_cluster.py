"""DBSCAN / NMS / HYBRID clustering and the batch entry point, with hand-worked numbers."""

import numpy as np
import pytest

from tao_qat.postprocessing.cluster import (
    aggregate_clusters,
    cluster_cells,
    dbscan_labels,
    nms_keep,
)
from tao_qat.postprocessing.decode import grid_centers
from tao_qat.postprocessing.postprocess import postprocess_batch, rescale_detections
from tao_qat.postprocessing.settings import ClusteringSettings

# Three overlapping cells and one isolated cell. Coverages are exact binary fractions so that
# the A+B+C weight sum is exactly 1.0.
# 1 - IoU (continuous areas): A-B = A-C = 1 - 90/110 = 0.18; B-C = 1 - 81/119 = 0.32.
A, B, C, D = [0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [50, 50, 60, 60]
BOXES = np.array([A, B, C, D], np.float64)
COVS = np.array([0.5, 0.25, 0.25, 0.75])


def dbscan(**kwargs):
    return ClusteringSettings(algorithm="dbscan", dbscan_eps=0.3, **kwargs)


def test_dbscan_weighted_mean_and_sum():
    # With eps 0.3, A reaches B and C (weight 0.5 + 0.25 + 0.25 = 1.0 >= 1: core); B and C
    # are border points of A's cluster. D alone weighs 0.75 < 1: noise.
    labels = dbscan_labels(BOXES, COVS, eps=0.3, min_samples=1)
    assert labels[0] == labels[1] == labels[2] >= 0
    assert labels[3] == -1
    boxes, scores = cluster_cells(BOXES, COVS, dbscan())
    # mean: x1 = 0.25*1 = 0.25, y1 = 0.25*1 = 0.25,
    # x2 = 0.5*10 + 0.25*11 + 0.25*10 = 10.25, y2 = 10.25; confidence = sum(cov) = 1.0
    np.testing.assert_allclose(boxes, [[0.25, 0.25, 10.25, 10.25]], atol=1e-6)
    np.testing.assert_allclose(scores, [1.0])


def test_dbscan_fractional_min_samples_rescues_weak_cells():
    # min_samples 0.5: D (0.75) is a cluster of its own; A+B+C as before.
    boxes, scores = cluster_cells(BOXES, COVS, dbscan(dbscan_min_samples=0.5))
    np.testing.assert_allclose(scores, [1.0, 0.75])
    np.testing.assert_allclose(boxes[1], D)


def test_dbscan_small_eps_splits_into_noise():
    # eps 0.1 < 0.18: every cell alone; no single cov reaches 1 -> nothing (TAO semantics).
    boxes, scores = cluster_cells(BOXES, COVS, ClusteringSettings(dbscan_eps=0.1))
    assert len(scores) == 0 and boxes.shape == (0, 4)


def test_mean_cov_confidence():
    labels = np.array([0, 0, 0, -1])
    _, confidence, member = aggregate_clusters(BOXES, COVS, labels, "mean_cov")
    # mean 1/3, min 0.25, max 0.5: (1/3 - 1/4) / (1/4) = 1/3
    np.testing.assert_allclose(confidence, [1 / 3])
    np.testing.assert_array_equal(member, [0, 0, 0, -1])
    # max == min: 0 (TAO: NaN, dropped)
    _, confidence, _ = aggregate_clusters(BOXES[:1], COVS[:1], np.array([0]), "mean_cov")
    assert confidence[0] == 0.0


def test_dbscan_confidence_threshold_is_strict_and_min_height():
    assert len(cluster_cells(BOXES, COVS, dbscan(dbscan_confidence_threshold=0.99))[1]) == 1
    assert len(cluster_cells(BOXES, COVS, dbscan(dbscan_confidence_threshold=1.0))[1]) == 0
    # cluster height 10.25 - 0.25 = 10: kept for minimum 9, dropped for 10 (needs > minimum)
    assert len(cluster_cells(BOXES, COVS, dbscan(minimum_height=9))[1]) == 1
    assert len(cluster_cells(BOXES, COVS, dbscan(minimum_height=10))[1]) == 0


def test_nms_greedy_with_plus_one_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.05])
    # IoU(+1) of the first two: 10*10 / (121 + 121 - 100) = 0.70 > 0.5 -> suppressed;
    # the last is below the 0.1 confidence threshold.
    np.testing.assert_array_equal(nms_keep(boxes, scores, 0.5, 0.1), [0, 2])
    settings = ClusteringSettings(
        algorithm="nms", nms_iou_threshold=0.5, nms_confidence_threshold=0.1
    )
    out_boxes, out_scores = cluster_cells(boxes, scores, settings)
    np.testing.assert_allclose(out_scores, [0.9, 0.7])
    np.testing.assert_allclose(out_boxes, boxes[[0, 2]])


def test_nms_uses_plus_one_pixel_convention():
    boxes = np.array([[0, 0, 9, 9], [5, 0, 14, 9]], float)
    # continuous IoU 36/126 = 0.286 < 0.3 would keep both; +1 pixel IoU 50/150 = 0.333 > 0.3
    np.testing.assert_array_equal(nms_keep(boxes, np.array([0.6, 0.5]), 0.3), [0])
    np.testing.assert_array_equal(nms_keep(boxes, np.array([0.6, 0.5]), 0.34), [0, 1])


def test_nms_keeps_weak_isolated_cells_that_dbscan_drops():
    settings = ClusteringSettings(algorithm="nms", nms_iou_threshold=0.5)
    _, scores = cluster_cells(BOXES, COVS, settings)
    # D (0.75) survives; A (0.5) suppresses B and C (IoU(+1) = 110/132 = 0.83)
    np.testing.assert_allclose(scores, [0.75, 0.5])


def test_hybrid_runs_nms_over_members_of_surviving_clusters():
    settings = ClusteringSettings(algorithm="hybrid", dbscan_eps=0.3, nms_iou_threshold=0.5)
    boxes, scores = cluster_cells(BOXES, COVS, settings)
    # DBSCAN keeps cluster {A, B, C} (D is noise); NMS over A, B, C keeps A with its raw cov.
    np.testing.assert_allclose(scores, [0.5])
    np.testing.assert_allclose(boxes, [A])
    # A cluster failing the DBSCAN confidence threshold removes its members from the NMS.
    dropped = ClusteringSettings(
        algorithm="hybrid", dbscan_eps=0.3, dbscan_confidence_threshold=1.0
    )
    assert len(cluster_cells(BOXES, COVS, dropped)[1]) == 0


def test_final_confidence_threshold_is_inclusive():
    settings = ClusteringSettings(algorithm="nms", nms_iou_threshold=0.5, confidence_threshold=0.75)
    _, scores = cluster_cells(BOXES, COVS, settings)
    np.testing.assert_allclose(scores, [0.75])


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="algorithm: 'kmeans' is not one of dbscan, nms, hybrid"):
        ClusteringSettings(algorithm="kmeans")
    with pytest.raises(ValueError, match=r"coverage_threshold: 1.5 is not in \[0, 1\]"):
        ClusteringSettings(coverage_threshold=1.5)
    with pytest.raises(ValueError, match="dbscan_min_samples"):
        ClusteringSettings(dbscan_min_samples=0)


def _encoded_grid(box, cells, grid=(4, 4), stride=16, cov_value=0.5):
    """cov [Gh, Gw] and bbox [Gh, Gw, 4] encoding ``box`` at ``cells`` (§3.3 formula)."""
    gx, gy = grid_centers(grid, stride)
    cov = np.zeros(grid, np.float32)
    bbox = np.zeros((*grid, 4), np.float32)
    for j, i in cells:
        cov[j, i] = cov_value
        bbox[j, i] = [
            (gx[i] - box[0]) / 35,
            (gy[j] - box[1]) / 35,
            (box[2] - gx[i]) / 35,
            (box[3] - gy[j]) / 35,
        ]
    return cov, bbox


def test_postprocess_batch_end_to_end():
    box = (8.0, 8.0, 40.0, 40.0)
    cov0, bbox0 = _encoded_grid(box, [(1, 1), (1, 2), (2, 1), (2, 2)])
    cov = np.zeros((2, 4, 4, 2), np.float32)  # 2 images, 2 classes
    bbox = np.zeros((2, 4, 4, 8), np.float32)
    cov[1, ..., 1], bbox[1, ..., 4:] = cov0, bbox0  # image 1, class 1 only
    settings = [ClusteringSettings(), ClusteringSettings(dbscan_eps=0.2)]
    results = postprocess_batch(cov, bbox, settings, image_size=(64, 64))
    assert [len(r) for r in results] == [0, 1]
    # 4 cells of cov 0.5 decode to the same box: confidence 2.0, box exact.
    np.testing.assert_allclose(results[1].boxes, [box], atol=1e-4)
    np.testing.assert_allclose(results[1].scores, [2.0])
    np.testing.assert_array_equal(results[1].class_ids, [1])
    # stride given instead of image size: same result
    again = postprocess_batch(cov, bbox, ClusteringSettings(), stride=16)
    np.testing.assert_allclose(again[1].boxes, [box], atol=1e-4)
    back = rescale_detections(results[1], (64, 64), (128, 32))
    np.testing.assert_allclose(back.boxes, [[16, 4, 80, 20]], atol=1e-4)


def test_postprocess_batch_shape_errors():
    with pytest.raises(ValueError, match=r"bbox \[B, Gh, Gw, 4C\]"):
        postprocess_batch(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 3)), ClusteringSettings(), 16)
    with pytest.raises(ValueError, match="2 clustering settings for 1 classes"):
        postprocess_batch(
            np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 4)), [ClusteringSettings()] * 2, 16
        )


def test_encoded_ground_truth_round_trips_to_ap_one():
    """Encode GT boxes as a rasterizer would, postprocess with TAO-like settings, evaluate."""
    from tao_qat.common.detections import GroundTruth
    from tao_qat.evaluation.evaluator import evaluate_detections

    grid, stride = (6, 8), 16  # 128x96 input
    images = [[(4.0, 6.0, 40.0, 50.0), (70.0, 20.0, 120.0, 90.0)], [(30.0, 30.0, 90.0, 60.0)]]
    cov = np.zeros((2, *grid, 1), np.float32)
    bbox = np.zeros((2, *grid, 4), np.float32)
    for b, boxes in enumerate(images):
        for box in boxes:
            i, j = int((box[0] + box[2]) / 2 // stride), int((box[1] + box[3]) / 2 // stride)
            cells = [(j, i), (j, i - 1), (j - 1, i), (j - 1, i - 1)]
            c, e = _encoded_grid(box, cells, grid=grid, stride=stride, cov_value=0.4)
            cov[b, ..., 0] = np.maximum(cov[b, ..., 0], c)
            bbox[b] = np.where(c[..., None] > 0, e, bbox[b])
    settings = ClusteringSettings(coverage_threshold=0.005, dbscan_eps=0.13, minimum_height=4)
    detections = postprocess_batch(cov, bbox, [settings], image_size=(128, 96))
    # every object: one cluster of 4 cells, confidence 4 * 0.4 = 1.6, the exact box
    np.testing.assert_allclose(np.concatenate([d.scores for d in detections]), [1.6] * 3, 1e-5)
    truth = [GroundTruth(boxes, [0] * len(boxes)) for boxes in images]
    for mode in ("integrate", "sample"):
        result = evaluate_detections(detections, truth, ["obj"], 0.9, ap_mode=mode)
        assert result.mean_average_precision == pytest.approx(1.0)
    # TAO's INTEGRATE on the same perfect result: 3 TPs over 3 GT -> 2/3
    result = evaluate_detections(detections, truth, ["obj"], 0.9, ap_mode="integrate_tao")
    assert result.mean_average_precision == pytest.approx(2 / 3)

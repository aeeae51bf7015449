"""VOC AP on small ranked sequences worked out by hand (§5)."""

import numpy as np
import pytest

from tao_qat.evaluation.average_precision import (
    ap_integrate,
    ap_integrate_tao,
    ap_sample,
    average_precision,
    interpolated_precision,
)


def pr(true_positive, num_gt):
    """Cumulative (precision, recall) of a ranked TP/FP sequence."""
    tp = np.cumsum(true_positive)
    return tp / np.arange(1, len(tp) + 1), tp / num_gt


def test_one_gt_one_perfect_detection():
    precision, recall = pr([1], num_gt=1)
    assert ap_integrate(precision, recall) == 1.0
    assert ap_sample(precision, recall) == 1.0
    # TAO's left Riemann sum never counts [0, r_0]: 0.0 for a perfect result
    assert ap_integrate_tao(precision, recall) == 0.0


def test_two_gt_two_true_positives():
    precision, recall = pr([1, 1], num_gt=2)
    assert ap_integrate(precision, recall) == 1.0
    assert ap_integrate_tao(precision, recall) == 0.5  # only the segment [0.5, 1] at p = 1


def test_tp_fp_tp_contrast_with_tao():
    # 2 GT; ranked TP, FP, TP: precision [1, 1/2, 2/3], recall [1/2, 1/2, 1]
    precision, recall = pr([1, 0, 1], num_gt=2)
    np.testing.assert_allclose(interpolated_precision(precision), [1, 2 / 3, 2 / 3])
    # area: 0.5 * 1 (recall 0 -> 0.5) + 0.5 * 2/3 (recall 0.5 -> 1) = 5/6
    assert ap_integrate(precision, recall) == pytest.approx(5 / 6)
    # TAO: unique recalls (0.5, 1): p_0 = max(prec[0:2]) = 1 times (1 - 0.5) = 0.5
    assert ap_integrate_tao(precision, recall) == pytest.approx(0.5)
    # 11-point: t = 0 .. 0.5 (6 points) -> 1; t = 0.6 .. 1 (5 points) -> 2/3
    assert ap_sample(precision, recall) == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_leading_false_positive():
    # 4 GT; FP, TP, FP, TP: precision [0, 1/2, 1/3, 1/2], recall [0, 1/4, 1/4, 1/2]
    precision, recall = pr([0, 1, 0, 1], num_gt=4)
    # interpolated precision is 1/2 everywhere up to recall 1/2: 1/2 * 1/2 = 1/4
    assert ap_integrate(precision, recall) == pytest.approx(0.25)
    # here r_0 = 0, so TAO's sum agrees
    assert ap_integrate_tao(precision, recall) == pytest.approx(0.25)
    # 11-point: t = 0 .. 0.5 -> 1/2 (6 points), t >= 0.6 unreachable -> 0
    assert ap_sample(precision, recall) == pytest.approx(3 / 11)


def test_sample_counts_exact_recall_thresholds():
    # 10 GT, three TPs: recall reaches exactly 3/10. Thresholds are k/10, so t = 0.3 counts:
    # t in {0, 0.1, 0.2, 0.3} -> precision 1: 4/11. (np.linspace's 0.30000000000000004 -> 3/11.)
    precision, recall = pr([1, 1, 1], num_gt=10)
    assert ap_sample(precision, recall) == pytest.approx(4 / 11)


def test_no_detections_and_modes():
    empty = np.zeros(0)
    for mode in ("sample", "integrate", "integrate_tao"):
        assert average_precision(empty, empty, mode) == 0.0
    assert average_precision(*pr([1, 0, 1], 2), mode="integrate") == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="unknown AP mode 'voc'; valid: sample, integrate"):
        average_precision(empty, empty, "voc")


def test_integrate_is_limit_of_dense_sampling():
    rng = np.random.default_rng(3)
    precision, recall = pr(rng.random(200) < 0.4, num_gt=100)
    dense = ap_sample(precision, recall, num_points=200001)
    assert ap_integrate(precision, recall) == pytest.approx(dense, abs=1e-4)

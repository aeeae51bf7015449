"""Pascal VOC average precision from a ranked precision/recall sequence (§5).

Inputs are the cumulative precision and recall after each detection of one class, ranked by
descending confidence (recall is non-decreasing). Modes:

- ``sample``: VOC2007 11-point: mean over t in {0, 0.1, ..., 1} of the highest precision at
  recall >= t (0 if recall never reaches t). Thresholds are ``k / 10`` so that a recall of
  exactly 3/10 counts for t = 0.3 (TAO's ``np.linspace`` gives 0.30000000000000004 and misses
  it).
- ``integrate``: VOC2010+: the area under the interpolated curve (precision made monotone
  from the right), summed over every recall step INCLUDING the first one from recall 0.
- ``integrate_tao``: TAO's INTEGRATE, kept for comparisons: a left Riemann sum over the unique
  recalls that skips the segment [0, r_0] and the precision at the final recall
  (1 GT + 1 perfect detection -> 0.0).
"""

import numpy as np

AP_MODES = ("sample", "integrate", "integrate_tao")


def interpolated_precision(precision):
    """Precision made monotone from the right: p_interp[k] = max(precision[k:])."""
    precision = np.asarray(precision, np.float64)
    return np.maximum.accumulate(precision[::-1])[::-1]


def ap_sample(precision, recall, num_points=11):
    """VOC2007 N-point AP (N = 11): mean of the max precision at recall >= k / (N - 1)."""
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    if len(precision) == 0:
        return 0.0
    thresholds = np.arange(num_points) / (num_points - 1)
    first = np.searchsorted(recall, thresholds, side="left")
    reached = first < len(recall)
    values = np.zeros(num_points)
    values[reached] = interpolated_precision(precision)[first[reached]]
    return float(values.mean())


def ap_integrate(precision, recall):
    """VOC2010+ AP: sum over k of (recall[k] - recall[k-1]) * p_interp[k], recall[-1] = 0."""
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    if len(precision) == 0:
        return 0.0
    steps = np.diff(recall, prepend=0.0)
    return float(np.sum(steps * interpolated_precision(precision)))


def ap_integrate_tao(precision, recall):
    """TAO's INTEGRATE (left Riemann sum over unique recalls r_0 < ... < r_k).

    p_i = max precision over the detections with recall in {r_i, ..., r_(k-1)};
    AP = sum over i < k of p_i * (r_(i+1) - r_i).
    """
    precision = np.asarray(precision, np.float64)
    recall = np.asarray(recall, np.float64)
    unique_recall, first = np.unique(recall, return_index=True)
    if len(unique_recall) < 2:
        return 0.0
    segment_max = np.maximum.reduceat(precision, first)[:-1]
    return float(np.sum(interpolated_precision(segment_max) * np.diff(unique_recall)))


_AP_FUNCTIONS = {"sample": ap_sample, "integrate": ap_integrate, "integrate_tao": ap_integrate_tao}


def average_precision(precision, recall, mode="integrate"):
    """AP of one class with ``mode`` in AP_MODES; NaN (no ground truth) gives 0 as in TAO."""
    if mode not in _AP_FUNCTIONS:
        raise ValueError(f"unknown AP mode {mode!r}; valid: {', '.join(AP_MODES)}")
    value = _AP_FUNCTIONS[mode](precision, recall)
    return 0.0 if np.isnan(value) else value

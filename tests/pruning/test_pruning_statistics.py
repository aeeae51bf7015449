"""Filter statistics: norms, normalizers, retained counts, equalization merges (hand-worked)."""

import subprocess
import sys

import numpy as np
import pytest

from tao_qat.pruning.statistics import (
    filter_norms,
    merge_stats,
    normalize,
    retained_count,
    retained_indices,
)


def test_filter_norms_over_all_axes_but_the_last():
    kernel = np.zeros((1, 1, 2, 3), np.float32)
    kernel[0, 0, :, 0] = [3, 4]  # sqrt(9 + 16) = 5
    kernel[0, 0, :, 2] = [1, 0]  # 1; filter 1 stays 0
    np.testing.assert_allclose(filter_norms(kernel), [5.0, 0.0, 1.0])
    # 3x3 spatial: a filter of all ones over [3, 3, 4] has norm sqrt(36) = 6.
    np.testing.assert_allclose(filter_norms(np.ones((3, 3, 4, 2))), [6.0, 6.0])


def test_normalizers():
    stat = np.array([5.0, 0.0, 1.0])
    np.testing.assert_allclose(normalize(stat, "max"), [1.0, 0.0, 0.2])
    # L2: stat / sqrt(25 + 0 + 1) * 3 (TAO multiplies by n, not sqrt(n)).
    np.testing.assert_allclose(normalize(stat, "L2"), [15 / np.sqrt(26), 0.0, 3 / np.sqrt(26)])
    np.testing.assert_allclose(normalize(stat, "off"), stat)
    np.testing.assert_array_equal(normalize(np.zeros(4), "max"), np.zeros(4))  # no NaN
    np.testing.assert_array_equal(normalize(np.zeros(4), "L2"), np.zeros(4))
    with pytest.raises(ValueError, match="normalizer"):
        normalize(stat, "L1")


@pytest.mark.parametrize(
    ("num_above", "num_filters", "min_num_filters", "granularity", "expected"),
    [
        (3, 64, 16, 8, 16),  # raised to min_num_filters (already a multiple of 8)
        (17, 64, 16, 8, 24),  # rounded up to the next multiple of 8
        (24, 64, 16, 8, 24),  # already a multiple
        (63, 64, 16, 8, 64),  # 63 -> 64
        (60, 62, 16, 8, 62),  # 60 -> 64, capped at the 62 filters the layer has
        (5, 10, 16, 8, 10),  # min_num_filters capped at 10, 10 -> 16 -> capped at 10
        (0, 1, 16, 8, 1),  # single-filter layer keeps its filter
        (30, 64, 16, 1, 30),  # granularity 1: exact count
        (0, 64, 1, 1, 1),  # never below 1 with min_num_filters 1
    ],
)
def test_retained_count(num_above, num_filters, min_num_filters, granularity, expected):
    assert retained_count(num_above, num_filters, min_num_filters, granularity) == expected


def test_retained_indices_strict_threshold_largest_kept_sorted():
    stat = np.array([0.9, 0.05, 0.5, 0.1, 0.7, 0.2])
    # Above 0.1 (strictly): 0.9, 0.5, 0.7, 0.2 -> indices 0, 2, 4, 5 (0.1 itself is not above).
    np.testing.assert_array_equal(retained_indices(stat, 0.1, 1, 1), [0, 2, 4, 5])
    # Granularity 5: 4 -> 5 filters; the next largest is 0.1 at index 3.
    np.testing.assert_array_equal(retained_indices(stat, 0.1, 1, 5), [0, 2, 3, 4, 5])
    # min_num_filters 2 with a threshold above everything: the two largest (0.9, 0.7).
    np.testing.assert_array_equal(retained_indices(stat, 1.0, 2, 1), [0, 4])
    # Threshold 0 keeps every non-zero filter; a negative one keeps everything.
    np.testing.assert_array_equal(retained_indices(stat, 0.0, 1, 1), np.arange(6))
    assert retained_indices(stat, -1.0, 1, 1).dtype == np.int64


A = [1.0, 0.2, 0.5, 0.0]
B = [0.4, 0.8, 0.5, 0.6]


@pytest.mark.parametrize(
    ("criterion", "merged", "kept_at_045"),
    [
        ("union", [1.0, 0.8, 0.5, 0.6], [0, 1, 2, 3]),
        ("intersection", [0.4, 0.2, 0.5, 0.0], [2]),
        ("arithmetic_mean", [0.7, 0.5, 0.5, 0.3], [0, 1, 2]),
        # sqrt(1.0 * 0.4) = 0.6325, sqrt(0.2 * 0.8) = 0.4, sqrt(0.25) = 0.5, a zero gives 0.
        ("geometric_mean", [np.sqrt(0.4), 0.4, 0.5, 0.0], [0, 2]),
    ],
)
def test_merge_criteria(criterion, merged, kept_at_045):
    got = merge_stats([np.array(A), np.array(B)], criterion)
    np.testing.assert_allclose(got, merged, rtol=1e-12)
    np.testing.assert_array_equal(retained_indices(got, 0.45, 1, 1), kept_at_045)


def test_merge_of_one_member_is_the_identity():
    for criterion in ("union", "intersection", "arithmetic_mean", "geometric_mean"):
        np.testing.assert_allclose(merge_stats([np.array(B)], criterion), B)
    with pytest.raises(ValueError, match="criterion"):
        merge_stats([np.array(A)], "median")


SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # any "import tensorflow" now raises ImportError
sys.modules["tf_keras"] = None
import numpy as np
from tao_qat.pruning import groups, plan, report, rules, statistics
conv = lambda name, inp, f: {"class_name": "Conv2D", "name": name,
    "config": {"name": name, "filters": f}, "inbound_nodes": [[[inp, 0, 0, {}]]]}
config = {"layers": [
    {"class_name": "InputLayer", "name": "in", "config": {"batch_input_shape": [None, 8, 8, 3]},
     "inbound_nodes": []},
    conv("a", "in", 4), conv("out", "a", 1)], "output_layers": [["out", 0, 0]]}
kernels = {"a": np.arange(12, dtype=float).reshape(1, 1, 3, 4), "out": np.ones((1, 1, 4, 1))}
p = plan.plan_pruning(config, kernels, plan.PruneSettings(min_num_filters=1, granularity=1,
                                                          threshold=0.9))
print("kept:", [int(i) for i in p.retained["a"]])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                and sys.modules[m] is not None)
print("loaded:", loaded)
"""


def test_numeric_core_runs_without_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # Filter f of a is [f, 4 + f, 8 + f]: norms sqrt(80)=8.94, sqrt(107)=10.34, sqrt(140)=11.83,
    # sqrt(179)=13.38; / max -> 0.668, 0.773, 0.884, 1.0: only filter 3 is above 0.9.
    assert done.stdout.split("\n")[:2] == ["kept: [3]", "loaded: []"]

"""Histogram -> amax algorithms (int8_calibration.md §1.1, §1.2, §1.5): hand-worked histograms
and a slow, obviously-correct transcription of the KL pseudocode."""

import time

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from tao_qat.common.errors import UsageError
from tao_qat.export.calibration import (
    HistogramCollector,
    compute_amax,
    entropy_amax,
    entropy_divergences,
    max_amax,
    mse_amax,
    percentile_amax,
    select_candidate,
)


def edges(n, width=1.0):
    return np.arange(n + 1) * width


def reference_divergences(hist, nq=128, start=128, stride=1, zero_bin="copy_next"):
    """The GTC'17 / pytorch-quantization loop, one candidate at a time, KL by scipy."""
    bins = np.asarray(hist, dtype=float).copy()
    if zero_bin == "copy_next" and bins[1:].sum() > 0:
        bins[0] = bins[1]
    candidates, divergences = [], []
    for i in range(start, len(bins) + 1, stride):
        level = np.array([(j * nq) // i for j in range(i)])
        level[bins[:i] == 0] = -1  # empty source bins belong to no level
        q = np.zeros(i)
        for k in range(nq):
            members = level == k
            if members.any():
                q[members] = bins[:i][members].sum() / members.sum()
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()  # outliers folded into the last kept bin
        candidates.append(i)
        divergences.append(scipy_entropy(p, q))  # normalises both; inf where q = 0 < p
    return np.array(candidates), np.array(divergences)


def random_histogram(rng, n):
    scale = rng.uniform(20, 400)
    hist = rng.poisson(rng.exponential(200, n) * np.exp(-np.arange(n) / scale)).astype(float)
    hist[rng.random(n) < 0.05] = 0  # some empty bins make some candidates infinite
    return hist


@pytest.mark.parametrize("zero_bin", ["copy_next", "keep"])
def test_vectorised_kl_equals_reference_on_random_histograms(zero_bin):
    rng = np.random.default_rng(1)
    for _ in range(8):
        hist = random_histogram(rng, int(rng.integers(130, 330)))
        stride = int(rng.choice([1, 3]))
        got_i, got_kl = entropy_divergences(hist, stride=stride, zero_bin=zero_bin)
        ref_i, ref_kl = reference_divergences(hist, stride=stride, zero_bin=zero_bin)
        np.testing.assert_array_equal(got_i, ref_i)
        np.testing.assert_array_equal(np.isinf(got_kl), np.isinf(ref_kl))
        finite = np.isfinite(ref_kl)
        np.testing.assert_allclose(got_kl[finite], ref_kl[finite], rtol=1e-9, atol=1e-12)
        # exact equality of the chosen bin
        assert select_candidate(got_i, got_kl) == select_candidate(ref_i, ref_kl)


def test_all_mass_in_the_last_bin_keeps_the_whole_range():
    # Every candidate i < 2048 has b[i-1] = 0 while outliers exist -> KL = inf; only i = 2048
    # is finite. Centre rule (2048 + 0.5) * w is clipped to the upper edge 2048 * w.
    hist = np.zeros(2048)
    hist[-1] = 1000
    assert entropy_amax(hist, edges(2048, 0.01)) == pytest.approx(20.48)


def test_single_spike_inside_the_range_ties_resolve_to_the_largest_threshold():
    # Mass only in bin 1000: i <= 1000 are inf; for every i >= 1001 Q reproduces P exactly
    # (the spike is the only non-empty bin of its level), KL = 0 -> the last tie, i = 2048.
    hist = np.zeros(2048)
    hist[1000] = 50
    cands, kl = entropy_divergences(hist)
    assert np.isinf(kl[cands <= 1000]).all()
    assert np.allclose(kl[cands >= 1001], 0.0)
    assert entropy_amax(hist, edges(2048)) == 2048.0


def test_uniform_histogram_threshold_is_the_max():
    # Uniform counts: KL(i = N) = 0 exactly, KL(i < N) > 0 (the folded outliers make P's last
    # bin (N - i + 1) times the others while Q spreads it). Threshold = upper edge.
    hist = np.full(2048, 7.0)
    cands, kl = entropy_divergences(hist)
    assert kl[-1] == pytest.approx(0.0, abs=1e-12)
    assert (kl[:-1] > 0).all()
    assert entropy_amax(hist, edges(2048, 0.5)) == 1024.0


def test_long_sparse_tail_is_clipped():
    # A half-Gaussian body in bins 0..~400 and one outlier in bin 2047 (max = 2048 * w).
    rng = np.random.default_rng(3)
    body = np.abs(rng.standard_normal(200_000)) * 100
    hist = np.bincount(body.astype(int), minlength=2048)[:2048].astype(float)
    hist[2047] += 1
    amax = entropy_amax(hist, edges(2048))
    assert 300 < amax < 500  # the threshold sits at the end of the body, far below 2048
    assert max_amax(hist, edges(2048)) == 2048


def test_threshold_rules_differ_by_half_a_bin():
    rng = np.random.default_rng(4)
    hist = np.bincount((np.abs(rng.standard_normal(100_000)) * 300).astype(int), minlength=2048)
    hist = hist[:2048].astype(float)
    center = entropy_amax(hist, edges(2048, 0.25))
    edge = entropy_amax(hist, edges(2048, 0.25), threshold_rule="edge")
    assert center - edge == pytest.approx(0.125)


def test_relu_zero_spike_needs_the_zero_bin_rule():
    # ReLU of N(0, 1): half the values are 0. Keeping the spike in bin 0 makes wide levels
    # costly and pulls the threshold far down; copying bin 1 over bin 0 (pytorch-quantization)
    # gives the same answer as the Gaussian without the spike.
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2_000_000).astype(np.float32)
    relu, gauss = HistogramCollector(), HistogramCollector()
    relu.collect(np.maximum(x, 0))
    gauss.collect(np.abs(x))
    copy_next = entropy_amax(*relu.histogram())
    keep = entropy_amax(*relu.histogram(), zero_bin="keep")
    assert copy_next > 0.8 * relu.max
    assert keep < 0.5 * copy_next
    assert entropy_amax(*gauss.histogram()) == pytest.approx(copy_next, rel=0.05)


def test_gaussian_entropy_is_below_max_and_clips_little():
    rng = np.random.default_rng(6)
    collector = HistogramCollector()
    collector.collect(rng.standard_normal(1_000_000))
    hist, bin_edges = collector.histogram()
    amax = entropy_amax(hist, bin_edges)
    assert 3.0 < amax < collector.max


def test_all_zero_and_empty_histograms_give_zero():
    collector = HistogramCollector()
    collector.collect(np.zeros((4, 4)))
    hist, bin_edges = collector.histogram()
    for method in ("entropy", "max", "percentile", "mse"):
        assert compute_amax(hist, bin_edges, method) == 0.0
    assert entropy_amax(np.zeros(2048), edges(2048)) == 0.0


def test_fewer_bins_than_start_bin_returns_the_upper_edge():
    assert entropy_amax(np.ones(100), edges(100, 0.1)) == pytest.approx(10.0)


def test_max_and_percentile():
    hist = np.zeros(10)
    hist[[0, 2, 6]] = [50, 49, 1]  # 100 values; 99 % are in bins 0..2
    assert max_amax(hist, edges(10)) == 7.0  # right edge of the last non-empty bin
    assert percentile_amax(hist, edges(10), 99.0) == 3.0  # cumulative 99 reached in bin 2
    assert percentile_amax(hist, edges(10), 99.5) == 7.0
    assert percentile_amax(hist, edges(10), 50.0) == 1.0  # 50 of 100 reached in bin 0
    with pytest.raises(UsageError, match="percentile"):
        percentile_amax(hist, edges(10), 0.0)


def test_mse_prefers_clipping_a_rare_outlier():
    # 10^6 values in bins 0..199 (uniform), one in bin 2047: amax = 2048 wastes resolution
    # (step 16 for the body) while amax ~ 200 has step ~1.6 and one clipped value.
    hist = np.zeros(2048)
    hist[:200] = 5000
    hist[2047] = 1
    amax = mse_amax(hist, edges(2048))
    assert 190 <= amax <= 260


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(UsageError, match="entropy, max, percentile, mse"):
        compute_amax(np.ones(4), edges(4), "kl")


def test_entropy_search_speed_53_tensors():
    # Target: the whole-model search (53 tensors, 2048 bins) well under ONNX Runtime's 22 s;
    # measured ~0.4 s here. Bound generously for a loaded 2-core machine.
    rng = np.random.default_rng(7)
    hists = [random_histogram(rng, 2048) for _ in range(53)]
    start = time.perf_counter()
    for hist in hists:
        entropy_amax(hist, edges(2048))
    assert time.perf_counter() - start < 4.0

"""Blocked one-pass binning (histogram_binning.abs_histogram, HistogramCollector.collect) gives the
counts of the plain rule bit for bit: floor(|x| * float32(1 / w)) clipped to the last bin, w set
by the first non-zero batch, same-width extension, coarsening past max_bins."""

import math

import numpy as np
import pytest

from tao_qat.common.errors import DataError
from tao_qat.export import histogram_binning
from tao_qat.export.calibration import HistogramCollector, entropy_amax
from tao_qat.export.histogram_binning import abs_histogram


class ReferenceCollector:
    """The collector before blocking (whole-tensor temporaries), kept as the specification."""

    def __init__(self, num_bins, max_bins):
        self.num_bins, self.max_bins = num_bins, max_bins
        self.max, self.count, self.zeros, self.counts, self.width = 0.0, 0, 0, None, None

    def collect(self, x):
        values = np.abs(np.asarray(x, dtype=np.float32).ravel())
        batch_max = float(values.max())
        self.count += values.size
        self.max = max(self.max, batch_max)
        if self.counts is None:
            if batch_max == 0.0:
                self.zeros += values.size
                return
            self.width = batch_max / self.num_bins
            self.counts = np.zeros(self.num_bins, dtype=np.int64)
            self.counts[0] += self.zeros
        elif batch_max > self.counts.size * self.width:
            needed = math.ceil(batch_max / self.width)
            while needed * self.width < batch_max:
                needed += 1
            factor = math.ceil(needed / self.max_bins)
            if factor > 1:
                counts = np.pad(self.counts, (0, -self.counts.size % factor))
                self.counts = counts.reshape(-1, factor).sum(axis=1)
                self.width *= factor
                needed = math.ceil(needed / factor)
            self.counts = np.pad(self.counts, (0, max(needed - self.counts.size, 0)))
        n = self.counts.size
        values *= np.float32(1.0 / self.width)
        np.minimum(values, np.float32(n - 1), out=values)
        self.counts += np.bincount(values.astype(np.intp), minlength=n)


def random_batch(rng):
    scale = float(rng.choice([0.0, 1e-3, 1.0, 3.0, 50.0, 1e4]))
    values = (rng.standard_normal(int(rng.integers(1, 3000))) * scale).astype(np.float32)
    kind = int(rng.integers(3))
    if kind == 1:
        values = np.maximum(values, 0)  # ReLU: a zero spike
    elif kind == 2:
        values = np.round(values * 4) / 4  # many values exactly on bin edges
    return values


@pytest.mark.parametrize("seed", range(4))
def test_blocked_collector_equals_the_reference_bit_for_bit(monkeypatch, seed):
    # 257-value blocks: every batch spans several blocks, the last one partial
    monkeypatch.setattr(histogram_binning, "BLOCK_VALUES", 257)
    rng = np.random.default_rng(seed)
    for _ in range(40):
        num_bins = int(rng.choice([4, 16, 2048]))
        max_bins = int(rng.choice([1, 2, 16])) * num_bins  # small: coarsening happens
        ours = HistogramCollector(num_bins=num_bins, max_bins=max_bins)
        reference = ReferenceCollector(num_bins, max_bins)
        for _ in range(int(rng.integers(1, 6))):
            batch = random_batch(rng)
            ours.collect(batch)
            reference.collect(batch)
        hist, edges = ours.histogram()
        if reference.counts is None:
            np.testing.assert_array_equal(hist, [reference.zeros])
        else:
            np.testing.assert_array_equal(hist, reference.counts)
            np.testing.assert_array_equal(edges, np.arange(hist.size + 1) * reference.width)
        assert ours.max == reference.max and ours.count == reference.count


def test_growing_range_keeps_exact_counts_whatever_the_batching():
    # Hand-made: batch 1 has max 4 -> 4 bins of width 1, the top value 4.0 in bin 3 ([3, 4]
    # closed); batch 2 reaches 6.5 -> 7 bins. |x| = 0.5, 1.5, 2.5, 6.5, 0.25, 5, 3.5 land in
    # bins 0, 1, 2, 6, 0, 5, 3, so the counts are [2, 1, 1, 2, 0, 1, 1], exactly those of one
    # histogram of width 1 (nothing is re-binned). Another batching with the same first batch
    # max gives the same counts, hence exactly the same amax.
    c = HistogramCollector(num_bins=4)
    c.collect([0.5, -1.5, 4.0, 2.5])
    c.collect([-6.5, 0.25, 5.0, 3.5])
    hist, edges = c.histogram()
    np.testing.assert_array_equal(hist, [2, 1, 1, 2, 0, 1, 1])
    np.testing.assert_array_equal(edges, np.arange(8.0))
    rebatched = HistogramCollector(num_bins=4)
    rebatched.collect([4.0])
    rebatched.collect([0.5, -1.5, 2.5, -6.5, 0.25])
    rebatched.collect([5.0, 3.5])
    np.testing.assert_array_equal(rebatched.histogram()[0], hist)
    assert entropy_amax(*rebatched.histogram(), start_bin=2) == entropy_amax(
        hist, edges, start_bin=2
    )


def test_abs_histogram_counts_truncated_indices_and_the_max():
    # w = 0.5: |x| = 0, 0.4, 0.5, 1.2, 2.0 -> indices 0, 0, 1, 2, 4 (no clipping here)
    counts, top = abs_histogram(np.array([0.0, -0.4, 0.5, -1.2, 2.0], np.float32), 0.5)
    np.testing.assert_array_equal(counts, [2, 1, 1, 0, 1])
    assert top == 2.0


def test_abs_histogram_stops_above_the_limit_and_on_non_finite_values(monkeypatch):
    monkeypatch.setattr(histogram_binning, "BLOCK_VALUES", 2)
    values = np.array([1.0, 2.0, 9.0, 1.0], np.float32)
    assert abs_histogram(values, 1.0, stop_above=8.0) == (None, 9.0)
    counts, block_max = abs_histogram(np.array([1.0, np.inf], np.float32), 1.0)
    assert counts is None and block_max == math.inf
    counts, block_max = abs_histogram(np.array([np.nan, 1.0], np.float32), 1.0)
    assert counts is None and math.isnan(block_max)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_in_a_later_batch_raise_and_leave_the_histogram(bad):
    c = HistogramCollector(name="add_1/add:0")
    c.collect(np.linspace(-1, 1, 100))
    before = c.histogram()[0]
    with pytest.raises(DataError, match="add_1/add:0: non-finite"):
        c.collect(np.array([0.5, bad, 0.25], np.float32))
    np.testing.assert_array_equal(c.histogram()[0], before)
    assert c.count == 100


def test_float64_and_strided_inputs_are_binned_as_float32():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 10)) * 3  # float64, and a non-contiguous view below
    ours, reference = HistogramCollector(num_bins=64), ReferenceCollector(64, 1024)
    for batch in (x[:, ::2], x[:, 1::2].T):
        ours.collect(batch)
        reference.collect(batch)
    np.testing.assert_array_equal(ours.histogram()[0], reference.counts)

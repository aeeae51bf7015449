"""HistogramCollector: |x| histograms with same-width extension (int8_calibration.md §1.2)."""

import numpy as np
import pytest

from tao_qat.common.errors import DataError
from tao_qat.export.calibration import HistogramCollector, entropy_amax


def test_first_batch_sets_width_and_top_value_goes_in_last_bin():
    c = HistogramCollector(num_bins=4)
    c.collect(np.array([[-4.0, 1.0], [0.5, 3.0]]))
    hist, edges = c.histogram()
    # max |x| = 4 -> w = 1; 0.5 -> bin 0, 1 -> bin 1, 3 -> bin 3, 4 (top edge) -> bin 3
    np.testing.assert_array_equal(hist, [1, 1, 0, 2])
    np.testing.assert_allclose(edges, [0, 1, 2, 3, 4])
    assert c.max == 4.0 and c.count == 4


def test_larger_batch_extends_with_bins_of_the_same_width():
    c = HistogramCollector(num_bins=4)
    c.collect([-4.0, 1.0, 0.5, 3.0])
    c.collect([6.0, 2.5])  # needs ceil(6 / 1) = 6 bins; old counts stay where they were
    hist, edges = c.histogram()
    np.testing.assert_array_equal(hist, [1, 1, 1, 2, 0, 1])
    np.testing.assert_allclose(edges, np.arange(7))
    c.collect([9.5])  # ceil(9.5) = 10 bins
    hist, edges = c.histogram()
    assert hist.size == 10 and hist[9] == 1 and edges[-1] == 10.0
    assert c.max == 9.5


def test_extension_beyond_max_bins_merges_whole_bins():
    c = HistogramCollector(num_bins=4, max_bins=8)
    c.collect([-4.0, 1.0, 0.5, 3.0])
    c.collect([6.0])  # [1, 1, 0, 2, 0, 1], width 1
    c.collect([20.0])  # would need 20 bins > 8: merge by 3 -> width 3, ceil(20 / 3) = 7 bins
    hist, edges = c.histogram()
    # [1, 1, 0 | 2, 0, 1] -> [2, 3], padded to 7 bins, 20 -> floor(20 / 3) = bin 6
    np.testing.assert_array_equal(hist, [2, 3, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(edges, np.arange(8) * 3.0)
    assert hist.sum() == c.count == 6


def test_zeros_before_the_first_nonzero_value_land_in_bin_zero():
    c = HistogramCollector(num_bins=4)
    c.collect(np.zeros(5))
    hist, edges = c.histogram()
    np.testing.assert_array_equal(hist, [5])
    assert edges[-1] == 0.0
    c.collect([2.0])  # w = 0.5; 2.0 -> last bin
    np.testing.assert_array_equal(c.histogram()[0], [5, 0, 0, 1])


def test_matches_numpy_histogram_within_the_first_range():
    rng = np.random.default_rng(0)
    first = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
    second = (0.5 * rng.standard_normal((4, 16, 32, 32))).astype(np.float32)
    c = HistogramCollector()
    c.collect(first)
    c.collect(second)
    hist, edges = c.histogram()
    values = np.abs(np.concatenate([first.ravel(), second.ravel()])).astype(np.float64)
    expected, expected_edges = np.histogram(
        values, bins=2048, range=(0, float(np.abs(first).max()))
    )
    np.testing.assert_allclose(edges, expected_edges, rtol=1e-9, atol=1e-12)
    # float32 binning may move a value that sits on a bin boundary: allow a handful
    assert np.abs(hist - expected).sum() <= 10
    assert hist.sum() == values.size


def test_non_finite_values_raise_a_data_error_naming_the_tensor():
    c = HistogramCollector(name="block_1a_relu")
    with pytest.raises(DataError, match="block_1a_relu: non-finite"):
        c.collect([1.0, np.nan])


def test_state_round_trip_gives_the_same_histogram_and_amax():
    rng = np.random.default_rng(1)
    c = HistogramCollector(name="t")
    c.collect(rng.standard_normal(10_000))
    c.collect(3 * rng.standard_normal(10_000))
    restored = HistogramCollector.from_state(c.state())
    for a, b in zip(c.histogram(), restored.histogram(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.max == c.max and restored.name == "t"
    assert entropy_amax(*restored.histogram()) == entropy_amax(*c.histogram())

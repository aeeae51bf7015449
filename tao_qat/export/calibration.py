"""Activation calibration (numpy only): |x| histograms and histogram -> amax algorithms
(entropy / max / percentile / mse), per int8_calibration.md §1 and §1.5.

Collection and search are separate so one set of histograms serves every method:

    collector = HistogramCollector()            # one per tensor
    for batch in batches: collector.collect(x)  # any shape, float
    hist, edges = collector.histogram()
    amax = entropy_amax(hist, edges)            # or max_amax / percentile_amax / mse_amax

All amax values are float (>= 0) in the tensor's units; the TensorRT scale is amax / 127.
See docs/calibration.md for the formulas and every choice made here.
"""

import functools
import logging
import math

import numpy as np

from tao_qat.common.errors import DataError, UsageError
from tao_qat.export.histogram_binning import abs_histogram, abs_max

logger = logging.getLogger(__name__)

DEFAULT_NUM_BINS = 2048
# A histogram whose same-width extension would exceed this many bins is coarsened by merging
# adjacent bins (an integer factor, so counts stay exact; see HistogramCollector).
DEFAULT_MAX_BINS = 16 * DEFAULT_NUM_BINS
ZERO_BIN_RULES = ("copy_next", "keep")
THRESHOLD_RULES = ("center", "edge")


class HistogramCollector:
    """Running histogram of |x| over [0, running max] for one tensor.

    The first batch with a non-zero max sets ``num_bins`` bins of width w = max / num_bins.
    A later batch that exceeds the covered range extends the histogram with more bins of the
    SAME width (pytorch-quantization's rule, int8_calibration.md §1.2 and §1.5): old counts stay
    in their bins, nothing is re-binned or interpolated, so the result does not depend on how
    the range grew. The bin count may therefore exceed ``num_bins``; if it would exceed
    ``max_bins``, groups of k adjacent bins are merged (width k*w), which is still exact.
    Zeros seen before the first non-zero value are kept and land in bin 0.

    Attributes:
        name: tensor name used in error messages.
        max: largest |x| seen (float; 0.0 before any non-zero value).
        count: number of values collected.
    """

    def __init__(self, name="tensor", num_bins=DEFAULT_NUM_BINS, max_bins=DEFAULT_MAX_BINS):
        if num_bins < 1 or max_bins < num_bins:
            raise ValueError(f"need 1 <= num_bins <= max_bins, got {num_bins}, {max_bins}")
        self.name = name
        self.num_bins = int(num_bins)
        self.max_bins = int(max_bins)
        self.max = 0.0
        self.count = 0
        self._zeros = 0  # values collected while the range was still [0, 0]
        self._counts = None  # int64 [N] once the range is known
        self._width = None  # bin width w (float64)

    def collect(self, x):
        """Add the values of ``x`` (array-like of any shape; NaN/inf raise DataError).

        One pass in blocks (``abs_histogram``) once the width is known; the first batch with a
        non-zero max, and a batch that would force coarsening, first scan for max |x|. Either
        way the counts are those of the rule in the class docstring, bit for bit.
        """
        values = np.asarray(x, dtype=np.float32).reshape(-1)
        if values.size == 0:
            return
        if self._counts is not None:
            # fast path: bins of the current width; stops early if coarsening would be needed
            stop = max(self.upper_edge, (self.max_bins - 1) * self._width)
            batch, batch_max = abs_histogram(values, self._width, stop)
            if batch is not None:
                self._add(batch, batch_max, values.size)
                return
        batch_max = abs_max(values)
        if not math.isfinite(batch_max):
            raise DataError(f"{self.name}: non-finite activation values (NaN or inf)")
        if self._counts is None:
            if batch_max == 0.0:
                self._zeros += values.size
                self.count += values.size
                return
            self._width = batch_max / self.num_bins
            self._counts = np.zeros(self.num_bins, dtype=np.int64)
            self._counts[0] += self._zeros
        elif batch_max > self.upper_edge:
            self._extend(batch_max)
        batch, _ = abs_histogram(values, self._width, math.inf)
        self._add(batch, batch_max, values.size)

    def _add(self, batch, batch_max, size):
        """Merge block counts of floor(|x| / w) (any length) after extending to batch_max;
        indices >= N go in the last bin (the top edge and float32 round-up)."""
        if not math.isfinite(batch_max):
            raise DataError(f"{self.name}: non-finite activation values (NaN or inf)")
        if batch_max > self.upper_edge:
            self._extend(batch_max)
        n = self._counts.size
        if batch.size > n:
            batch[n - 1] += batch[n:].sum()
            batch = batch[:n]
        self._counts[: batch.size] += batch
        self.count += size
        self.max = max(self.max, batch_max)

    @property
    def upper_edge(self):
        """Right edge of the last bin (0.0 while no non-zero value was seen)."""
        return 0.0 if self._counts is None else self._counts.size * self._width

    def _extend(self, new_max):
        needed = math.ceil(new_max / self._width)
        while needed * self._width < new_max:  # float guard
            needed += 1
        factor = math.ceil(needed / self.max_bins)
        if factor > 1:
            counts = np.pad(self._counts, (0, -self._counts.size % factor))
            self._counts = counts.reshape(-1, factor).sum(axis=1)
            self._width *= factor
            needed = math.ceil(needed / factor)
            logger.debug(
                "%s: histogram coarsened %dx to stay under %d bins",
                self.name,
                factor,
                self.max_bins,
            )
        self._counts = np.pad(self._counts, (0, max(needed - self._counts.size, 0)))

    def histogram(self):
        """(counts int64 [N], bin_edges float64 [N + 1]) with bin_edges[0] = 0.

        Before any non-zero value: ([count], [0.0, 0.0]) (every amax function returns 0.0).
        """
        if self._counts is None:
            return np.array([self._zeros], dtype=np.int64), np.zeros(2)
        return self._counts.copy(), np.arange(self._counts.size + 1) * self._width

    def state(self):
        """Plain-value state (for np.savez / json): name, max, count, counts, width."""
        return {
            "name": self.name,
            "num_bins": self.num_bins,
            "max_bins": self.max_bins,
            "max": self.max,
            "count": self.count,
            "zeros": self._zeros,
            "counts": None if self._counts is None else self._counts.copy(),
            "width": self._width,
        }

    @classmethod
    def from_state(cls, state):
        """Inverse of ``state()``."""
        collector = cls(state["name"], state["num_bins"], state["max_bins"])
        collector.max, collector.count = float(state["max"]), int(state["count"])
        collector._zeros = int(state["zeros"])
        if state["counts"] is not None:
            collector._counts = np.asarray(state["counts"], dtype=np.int64).copy()
            collector._width = float(state["width"])
        return collector


def _as_histogram(hist, bin_edges):
    counts = np.asarray(hist, dtype=np.float64)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if counts.ndim != 1 or edges.shape != (counts.size + 1,):
        raise ValueError(f"need hist [N] and bin_edges [N + 1], got {counts.shape}, {edges.shape}")
    if (counts < 0).any():
        raise ValueError("histogram counts must be >= 0")
    return counts, edges


def max_amax(hist, bin_edges):
    """Right edge of the last non-empty bin (the max |x| when the first batch set the range)."""
    counts, edges = _as_histogram(hist, bin_edges)
    nonzero = np.flatnonzero(counts)
    return 0.0 if nonzero.size == 0 else float(edges[nonzero[-1] + 1])


def percentile_amax(hist, bin_edges, percentile=99.99):
    """Right edge of the first bin at which the cumulative fraction of |x| reaches
    ``percentile`` / 100, so at least that share of the values is <= amax."""
    if not 0.0 < percentile <= 100.0:
        raise UsageError(f"percentile: {percentile} is not in (0, 100]")
    counts, edges = _as_histogram(hist, bin_edges)
    total = counts.sum()
    if total == 0 or edges[-1] == 0:
        return 0.0
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, total * (percentile / 100.0), side="left"))
    return float(edges[min(index, counts.size - 1) + 1])


@functools.lru_cache(maxsize=8)
def _level_starts(start_bin, n, stride, nq):
    """[K, nq + 1] int64: level k of candidate i covers bins [ceil(k*i/nq), ceil((k+1)*i/nq)).
    Cached: every tensor of a calibration run has the same shape of search."""
    candidates = np.arange(start_bin, n + 1, stride, dtype=np.int64)
    starts = (np.arange(nq + 1)[None, :] * candidates[:, None] + nq - 1) // nq
    starts.flags.writeable = False
    return starts


def entropy_divergences(
    hist, bin_edges=None, *, num_quantized_bins=128, start_bin=128, stride=1, zero_bin="copy_next"
):
    """KL(P || Q) of every candidate i (number of kept bins), vectorised over i.

    For candidate i (start_bin <= i <= N, step stride), with b the bin counts:
      P_j = b_j for j < i - 1, P_{i-1} = b_{i-1} + sum(b[i:])   (outliers folded in)
      level(j) = floor(j * num_quantized_bins / i)               (exact integer arithmetic)
      Q_j = (sum of b over j's level) / (non-empty bins in j's level) if b_j > 0 else 0
      KL = sum_j p_j log(p_j / q_j) with p, q normalised; inf where Q_j = 0 < P_j.
    With prefix sums (C = cumsum b, Z = cumsum [b > 0], L = cumsum b log b) this is
      KL = (L_{i-1} + P_{i-1} log P_{i-1} - sum_k M_k log(M_k / n_k) - O_i log Q_{i-1}) / T
           + log(C_i / T)
    where M_k, n_k are level k's mass and non-empty count, O_i = T - C_i, T = total count.

    Args:
        hist: counts [N] of |x|; bin_edges is accepted for symmetry and ignored.
        zero_bin: "copy_next" sets b_0 = b_1 first (pytorch-quantization: the ReLU zero spike
            would otherwise dominate the search), "keep" leaves b_0 alone.
    Returns:
        (candidates int64 [K], kl float64 [K]); empty arrays when N < start_bin.
    """
    del bin_edges
    if zero_bin not in ZERO_BIN_RULES:
        raise UsageError(f"zero_bin: {zero_bin!r} is not one of {', '.join(ZERO_BIN_RULES)}")
    counts = np.asarray(hist, dtype=np.float64).copy()
    if zero_bin == "copy_next" and counts.size > 1 and counts[1:].sum() > 0:
        counts[0] = counts[1]
    n = counts.size
    candidates = np.arange(max(start_bin, 1), n + 1, stride, dtype=np.int64)
    total = counts.sum()
    if candidates.size == 0 or total == 0:
        return candidates, np.zeros(candidates.size)
    zero = np.zeros(1)
    cum = np.concatenate([zero, np.cumsum(counts)])  # C_k = sum b[:k]
    nonempty = np.concatenate([zero, np.cumsum(counts > 0)])  # Z_k
    blogb = counts * np.log(np.where(counts > 0, counts, 1.0))
    cum_blogb = np.concatenate([zero, np.cumsum(blogb)])  # L_k

    nq = num_quantized_bins
    starts = _level_starts(max(start_bin, 1), n, stride, nq)
    mass = np.diff(cum[starts], axis=1)
    filled = np.diff(nonempty[starts], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level_terms = np.where(mass > 0, mass * np.log(mass / np.maximum(filled, 1)), 0.0)
    sum_m_log_q = level_terms.sum(axis=1)

    last = candidates - 1
    outliers = total - cum[candidates]
    p_last = counts[last] + outliers
    p_last_log = np.where(p_last > 0, p_last * np.log(np.where(p_last > 0, p_last, 1.0)), 0.0)
    last_level = np.arange(candidates.size), (last * nq) // candidates
    q_last = np.where(
        filled[last_level] > 0, mass[last_level] / np.maximum(filled[last_level], 1), 0.0
    )
    outlier_term = np.where(outliers > 0, outliers * np.log(np.where(q_last > 0, q_last, 1.0)), 0.0)
    kl = (cum_blogb[last] + p_last_log - sum_m_log_q - outlier_term) / total
    with np.errstate(divide="ignore"):  # C_i = 0 only where the candidate is inf below
        kl += np.log(cum[candidates] / total)
    kl = np.where((counts[last] == 0) & (outliers > 0), np.inf, np.maximum(kl, 0.0))
    return candidates, kl


def select_candidate(candidates, kl, rtol=1e-9, atol=1e-12):
    """The LARGEST candidate whose KL is within rtol * min + atol of the minimum (ties and
    floating-point near-ties go to the larger threshold, as in pytorch-quantization)."""
    finite = np.isfinite(kl)
    if not finite.any():
        return int(candidates[-1])
    best = kl[finite].min()
    return int(candidates[np.flatnonzero(finite & (kl <= best + rtol * abs(best) + atol))[-1]])


def entropy_amax(
    hist,
    bin_edges,
    num_quantized_bins=128,
    start_bin=128,
    stride=1,
    *,
    zero_bin="copy_next",
    threshold_rule="center",
):
    """TensorRT-style KL-divergence threshold (IInt8EntropyCalibrator2 as described at GTC'17).

    Picks the candidate m minimising KL(P || Q) (see ``entropy_divergences``), then
    threshold = (m + 0.5) * w ("center", GTC'17) or m * w ("edge", pytorch-quantization),
    clipped to the histogram's upper edge. w = bin_edges[1] - bin_edges[0].

    Args:
        hist: counts [N] of |x|; bin_edges: [N + 1] uniform edges from 0.
        num_quantized_bins: levels of the 8-bit candidate (128 = 7 magnitude bits + sign).
        start_bin, stride: candidates i = start_bin, start_bin + stride, ..., <= N.
        zero_bin, threshold_rule: documented options (int8_calibration.md §1.5).
    Returns:
        amax (float). 0.0 for an all-zero histogram; the upper edge when N < start_bin.
    """
    if threshold_rule not in THRESHOLD_RULES:
        valid = ", ".join(THRESHOLD_RULES)
        raise UsageError(f"threshold_rule: {threshold_rule!r} is not one of {valid}")
    counts, edges = _as_histogram(hist, bin_edges)
    if counts.sum() == 0 or edges[-1] == 0:
        return 0.0
    candidates, kl = entropy_divergences(
        counts,
        num_quantized_bins=num_quantized_bins,
        start_bin=start_bin,
        stride=stride,
        zero_bin=zero_bin,
    )
    if candidates.size == 0:
        return float(edges[-1])
    m = select_candidate(candidates, kl)
    width = edges[1] - edges[0]
    threshold = (m + 0.5) * width if threshold_rule == "center" else m * width
    return float(min(threshold, edges[-1]))


def mse_amax(hist, bin_edges, num_bits=8, start_bin=128, stride=1):
    """amax = edge i * w (i >= start_bin) minimising the histogram-weighted squared error
    sum_j b_j (c_j - s * clip(round(c_j / s), 0, 2^(bits-1) - 1))^2 with s = amax / 127 and c_j
    the bin centres (round half to even, as the Q node does)."""
    counts, edges = _as_histogram(hist, bin_edges)
    if counts.sum() == 0 or edges[-1] == 0:
        return 0.0
    levels = 2 ** (num_bits - 1) - 1
    centers = (edges[:-1] + edges[1:]) / 2
    used = counts > 0
    centers, weights = centers[used], counts[used]
    candidates = np.arange(max(start_bin, 1), counts.size + 1, stride)
    if candidates.size == 0:
        return float(edges[-1])
    errors = np.empty(candidates.size)
    chunk = max(1, 2**20 // max(centers.size, 1))  # bound the [chunk, bins] temporaries
    for lo in range(0, candidates.size, chunk):
        scale = edges[candidates[lo : lo + chunk]][:, None] / levels
        quantized = np.clip(np.round(centers[None, :] / scale), 0, levels) * scale
        errors[lo : lo + chunk] = ((centers[None, :] - quantized) ** 2 * weights).sum(axis=1)
    return float(edges[candidates[int(np.argmin(errors))]])


# method name -> function(hist, bin_edges, **options) -> amax
AMAX_METHODS = {
    "entropy": entropy_amax,
    "max": max_amax,
    "percentile": percentile_amax,
    "mse": mse_amax,
}


def compute_amax(hist, bin_edges, method="entropy", **options):
    """Dispatch to ``AMAX_METHODS[method]``; UsageError lists the valid methods."""
    if method not in AMAX_METHODS:
        raise UsageError(f"calibration method {method!r} is not one of {', '.join(AMAX_METHODS)}")
    return AMAX_METHODS[method](hist, bin_edges, **options)


def compute_amax_dict(collectors, method="entropy", **options):
    """{collector.name: amax} for an iterable of HistogramCollector, in iteration order."""
    return {c.name: compute_amax(*c.histogram(), method=method, **options) for c in collectors}

"""Blocked binning of |x| for the calibration histograms (int8_calibration.md §1.5): one read of
a tensor, no tensor-sized temporaries. numpy only; used by calibration.HistogramCollector.
Timings and the choices made: docs/calibration.md §1."""

import math

import numpy as np

# Values per block of abs_histogram: the float32 and intp block buffers (768 KiB) stay in a
# 2 MiB L2 cache, and no temporary as large as the tensor is allocated (page faults cost more
# than the arithmetic on this machine; docs/calibration.md §1).
BLOCK_VALUES = 1 << 16


def abs_max(values):
    """max |x| of flat float32 ``values`` (NaN if any value is NaN; no temporary copy)."""
    top, bottom = float(values.max()), float(values.min())
    if math.isnan(top) or math.isnan(bottom):
        return math.nan
    return max(top, -bottom)


def abs_histogram(values, width, stop_above=math.inf):
    """Counts of floor(|x| * float32(1 / width)) over flat float32 ``values``, in blocks.

    Per block: |x| into a reused float32 buffer, its max, the product cast (truncated) straight
    into a reused intp buffer, np.bincount. The same float32 arithmetic as
    ``np.bincount((np.abs(values) * np.float32(1 / width)).astype(np.intp))`` without the two
    tensor-sized temporaries.

    Returns:
        (counts int64 [max index + 1], max |x| as float), or (None, block max) as soon as a
        block's max is above ``stop_above`` or not finite (nothing is counted then).
    """
    inv = np.float32(1.0 / width)
    block = min(BLOCK_VALUES, values.size)
    magnitudes = np.empty(block, dtype=np.float32)
    indices = np.empty(block, dtype=np.intp)
    counts = np.zeros(1, dtype=np.int64)
    top = 0.0
    for start in range(0, values.size, block):
        chunk = values[start : start + block]
        size = chunk.size
        np.abs(chunk, out=magnitudes[:size])
        block_max = float(magnitudes[:size].max())
        if not (math.isfinite(block_max) and block_max <= stop_above):
            return None, block_max
        top = max(top, block_max)
        np.multiply(magnitudes[:size], inv, out=indices[:size], casting="unsafe")
        found = np.bincount(indices[:size])
        if found.size > counts.size:
            counts = np.pad(counts, (0, found.size - counts.size))
        counts[: found.size] += found
    return counts, top

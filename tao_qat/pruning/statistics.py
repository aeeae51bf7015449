"""Filter statistics of min-weight pruning, numpy only (tao_detectnet_v2.md §7).

TAO's "min_weight" method (Molchanov et al. 2016): the statistic of output filter f of a
convolution is the L2 norm of its kernel slice over every axis except the output axis (the bias
is ignored); the statistics of one layer are normalised (``max`` or ``L2``); members of an
equalization group combine their normalised statistics (``union`` ...); a filter survives when
its statistic is strictly above the threshold, with the count raised to ``min_num_filters``
and rounded up to a multiple of the granularity, the largest statistics winning.
"""

import numpy as np

NORMALIZERS = ("max", "L2", "off")  # "off" exists in TAO's library, not on its command line
CLI_NORMALIZERS = ("max", "L2")
CRITERIA = ("union", "intersection", "arithmetic_mean", "geometric_mean")


def filter_norms(kernel):
    """Return the L2 norm of every output filter of ``kernel``.

    Args:
        kernel: float array whose LAST axis indexes output filters, e.g. a Conv2D kernel
            [kh, kw, C_in, F] or a Dense kernel [C_in, F].

    Returns:
        float64 [F]: sqrt of the sum of squares over all other axes.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    return np.sqrt(np.sum(kernel**2, axis=tuple(range(kernel.ndim - 1))))


def normalize(stat, normalizer):
    """Normalise the statistics of one layer as TAO does.

    ``max``: stat / max(stat). ``L2``: stat / sqrt(sum(stat**2)) * len(stat) (TAO multiplies by
    n, not sqrt(n)). ``off``: unchanged. An all-zero layer stays all zero.

    Args:
        stat: float [F] non-negative filter statistics.
        normalizer: one of NORMALIZERS.
    """
    stat = np.asarray(stat, dtype=np.float64)
    if normalizer == "max":
        scale = np.max(stat)
    elif normalizer == "L2":
        scale = np.sqrt(np.sum(stat**2)) / len(stat)
    elif normalizer == "off":
        return stat
    else:
        raise ValueError(f"normalizer {normalizer!r} not in {NORMALIZERS}")
    return stat / scale if scale > 0 else np.zeros_like(stat)


def merge_stats(stats, criterion):
    """Combine the normalised statistics of the members of an equalization group.

    Args:
        stats: list of float [F] arrays (one per member, same F) or a [M, F] array.
        criterion: ``union`` (elementwise max), ``intersection`` (min), ``arithmetic_mean``
            or ``geometric_mean`` (exp(mean(log)); a zero member gives 0).

    Returns:
        float64 [F].
    """
    stats = np.asarray(np.stack(stats) if isinstance(stats, list | tuple) else stats, np.float64)
    if stats.ndim != 2:
        raise ValueError(f"stats must be [members, filters], got shape {stats.shape}")
    if criterion == "union":
        return np.max(stats, axis=0)
    if criterion == "intersection":
        return np.min(stats, axis=0)
    if criterion == "arithmetic_mean":
        return np.mean(stats, axis=0)
    if criterion == "geometric_mean":
        with np.errstate(divide="ignore"):
            return np.exp(np.mean(np.log(stats), axis=0))
    raise ValueError(f"equalization criterion {criterion!r} not in {CRITERIA}")


def retained_count(num_above, num_filters, min_num_filters, granularity):
    """Number of filters kept by TAO's rule.

    n = max(num_above, min(min_num_filters, num_filters)), rounded UP to a multiple of
    ``granularity``, then capped at ``num_filters``.

    Args:
        num_above: filters whose statistic is strictly above the threshold.
        num_filters: filters of the layer before pruning.
        min_num_filters: lower bound (>= 1), itself capped at ``num_filters``.
        granularity: the count is a multiple of this (>= 1) unless capped.
    """
    count = max(int(num_above), min(int(min_num_filters), int(num_filters)))
    remainder = count % granularity
    if remainder:
        count += granularity - remainder
    return min(count, int(num_filters))


def retained_indices(stat, threshold, min_num_filters, granularity):
    """Indices (ascending, int64) of the filters kept for the statistics ``stat``.

    The ``retained_count`` largest statistics win; ties are broken by the lower index (stable
    sort), so the result is deterministic.

    Args:
        stat: float [F] (normalised, possibly merged) statistics.
        threshold: a filter counts as "above" when stat > threshold (strict).
        min_num_filters, granularity: see ``retained_count``.
    """
    stat = np.asarray(stat, dtype=np.float64)
    count = retained_count(
        np.count_nonzero(stat > threshold), len(stat), min_num_filters, granularity
    )
    order = np.argsort(-stat, kind="stable")
    return np.sort(order[:count]).astype(np.int64)

"""Class / objective weights of the DetectNet_v2 cost and their epoch auto-weighting (TAO §3.5).

TF-free numpy functions; ``tao_qat.objectives.cost`` holds the weights in a tf.Variable and calls
``autoweighted_objective_weights`` at epoch end. All arithmetic is float32, as in TAO.
"""

import numpy as np

F32 = np.float32


def class_weight_fractions(class_weights):
    """cw[c] = class_weight[c] / sum(class_weight): float32 [C] (constant during training)."""
    class_weights = np.asarray(class_weights, F32)
    return class_weights / class_weights.sum(dtype=F32)


def initial_objective_weights(initial_weights):
    """ow[c, o] = initial_weight[c, o] / sum_o initial_weight[c, o] (0 where the sum is 0).

    Args:
        initial_weights: float [C, O] from ``objectives { initial_weight }``.
    Returns:
        float32 [C, O].
    """
    initial_weights = np.asarray(initial_weights, F32)
    sums = initial_weights.sum(axis=1, keepdims=True, dtype=F32)
    safe = np.where(sums == 0, F32(1), sums)
    return np.where(sums == 0, F32(0), initial_weights / safe).astype(F32)


def autoweighted_objective_weights(cost_sums, weight_targets, old_weights, min_weight, max_weight):
    """New objective weights from one epoch of per-(class, objective) mean costs.

    Per class c: w[o] = weight_target[c, o] / S[c, o] (0 where S = 0), normalised to sum 1,
    then clamped to [min_weight, max_weight] (max applied first, then min, like TAO: if
    max < min the result is max). A class whose unnormalised sum is 0 keeps its old weights.

    Args:
        cost_sums: float [C, O], S = sum over the epoch's minibatches of the mean costs.
        weight_targets: float [C, O] from ``objectives { weight_target }``.
        old_weights: float [C, O], the current objective weights.
        min_weight, max_weight: ``min_objective_weight`` / ``max_objective_weight``.
    Returns:
        float32 [C, O].
    """
    sums = np.asarray(cost_sums, F32)
    targets = np.asarray(weight_targets, F32)
    old = np.asarray(old_weights, F32)
    inverse = np.where(sums == 0, F32(0), F32(1) / np.where(sums == 0, F32(1), sums))
    weights = targets * inverse
    total = weights.sum(axis=1, keepdims=True, dtype=F32)
    normaliser = np.where(total == 0, F32(0), F32(1) / np.where(total == 0, F32(1), total))
    new = np.minimum(np.maximum(weights * normaliser, F32(min_weight)), F32(max_weight))
    return np.where(total == 0, old, new).astype(F32)

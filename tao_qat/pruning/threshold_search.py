"""Pick ``qat prune -pth`` for a target size: a model trained from scratch has no near-zero
filters, so no fixed threshold fits every model; bisection on the pruning plan finds one.
"""

__all__ = ["choose_threshold", "conv_weight_ratio"]


def conv_weight_ratio(model_config, kernels, threshold):
    """Fraction of the convolution weights ``qat prune -pth threshold`` keeps (from the plan,
    without rebuilding the model). kernels: {conv layer: [kh, kw, C_in, C_out]}."""
    from tao_qat.pruning.plan import PruneSettings, plan_pruning

    plan = plan_pruning(model_config, kernels, PruneSettings(threshold=threshold))
    kept = sum(
        k.shape[0] * k.shape[1] * len(plan.input_keep(name)) * len(plan.output_keep(name))
        for name, k in kernels.items()
    )
    return kept / sum(k.size for k in kernels.values())


def choose_threshold(model_file, target_ratio, iterations=10):
    """Smallest ``-pth`` in [0, 1] (bisection to 2**-iterations) that keeps at most
    ``target_ratio`` of the convolution weights; 1.0 when even that keeps more.

    Returns (threshold, kept fraction of the convolution weights at that threshold).
    """
    from tao_qat.modeling.model_io import load_model_file
    from tao_qat.pruning.surgery import layer_weights

    model = load_model_file(model_file)
    kernels = {
        name: arrays["kernel"]
        for name, arrays in layer_weights(model).items()
        if "kernel" in arrays
    }
    config = model.get_config()
    low, high = 0.0, 1.0
    high_ratio = conv_weight_ratio(config, kernels, high)
    if high_ratio > target_ratio:
        return high, high_ratio
    for _ in range(iterations):
        middle = (low + high) / 2
        value = conv_weight_ratio(config, kernels, middle)
        if value <= target_ratio:
            high, high_ratio = middle, value
        else:
            low = middle
    return high, high_ratio

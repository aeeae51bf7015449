"""threshold_search: the bisection that turns a target model size into ``qat prune -pth``."""

from tao_qat.modeling.model_io import load_model_file
from tao_qat.pruning.plan import PruneSettings
from tao_qat.pruning.run_prune import prune_model
from tao_qat.pruning.surgery import layer_weights
from tao_qat.pruning.threshold_search import choose_threshold, conv_weight_ratio


def _conv_kernels(model):
    return {n: a["kernel"] for n, a in layer_weights(model).items() if "kernel" in a}


def _conv_weights(model):
    return sum(k.size for k in _conv_kernels(model).values())


def test_ratio_is_what_the_surgery_keeps(resnet10_file):
    model = load_model_file(resnet10_file)
    for threshold in (0.0, 0.3, 0.6):
        predicted = conv_weight_ratio(model.get_config(), _conv_kernels(model), threshold)
        pruned = prune_model(model, PruneSettings(threshold=threshold))[0]
        assert predicted == _conv_weights(pruned) / _conv_weights(model)
        if threshold == 0.0:
            assert predicted == 1.0  # no normalised filter norm is strictly below 0
        else:
            assert predicted < 1.0  # the randomised filter norms spread over [0.02, 1]


def test_bisection_meets_the_target_from_below(resnet10_file):
    model = load_model_file(resnet10_file)
    kernels, config = _conv_kernels(model), model.get_config()
    for target in (0.8, 0.5):
        threshold, kept = choose_threshold(resnet10_file, target)
        assert kept <= target
        assert kept == conv_weight_ratio(config, kernels, threshold)
        # One bisection step (2**-10) lower keeps more than the target: the smallest threshold.
        assert conv_weight_ratio(config, kernels, threshold - 2**-10) > target
    assert choose_threshold(resnet10_file, 1e-6)[0] == 1.0  # unreachable: the largest -pth

"""Graph analysis: equalization groups, fixed groups, refusals (hand-written configs, TF-free)."""

import numpy as np
import pytest

from tao_qat.common.errors import UsageError
from tao_qat.pruning.groups import analyze_graph
from tao_qat.pruning.plan import PruneSettings, plan_pruning
from tao_qat.pruning.rules import DEFAULT_RULES, NO_WEIGHTS, UnprunableModelError


def layer(name, class_name, inputs=(), **config):
    """One entry of a functional model config, as tf_keras writes it."""
    return {
        "class_name": class_name,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
    }


def model_config(layers, outputs):
    return {"layers": layers, "output_layers": [[name, 0, 0] for name in outputs]}


def net_input(channels=3):
    return layer("in", "InputLayer", batch_input_shape=[None, 8, 8, channels])


def conv(name, source, filters):
    return layer(name, "Conv2D", [source], filters=filters, data_format="channels_last")


def groups_of(analysis):
    """{frozenset(members): fixed reason} of the groups with >= 2 members."""
    return {frozenset(g.members): g.fixed for g in analysis.groups if len(g.members) > 1}


def residual_chain():
    """a, b -> BN / QDQ / ReLU -> add_1 -> relu -> add_2 (+ c) -> head (an output conv)."""
    return model_config(
        [
            net_input(),
            conv("a", "in", 8),
            conv("b", "in", 8),
            layer("a_bn", "BatchNormalization", ["a"], axis=-1),
            layer("a_qdq", "QDQ", ["a_bn"]),
            layer("b_relu", "ReLU", ["b"]),
            layer("add_1", "Add", ["a_qdq", "b_relu"]),
            layer("relu_1", "Activation", ["add_1"], activation="relu"),
            conv("c", "relu_1", 8),
            layer("add_2", "Add", ["relu_1", "c"]),
            conv("head", "add_2", 2),
        ],
        ["head"],
    )


def test_groups_merge_through_pass_through_layers_and_transitively():
    analysis = analyze_graph(residual_chain())
    assert groups_of(analysis) == {frozenset({"a", "b", "c"}): None}
    assert analysis.group("head").fixed == "model output"
    # add_2's channels are indexed by the group's retained filters (origin: a member of it).
    assert analysis.origin["add_2"] in {"a", "b", "c"}
    assert analysis.origin["in"] is None


def test_excluded_member_fixes_the_whole_group():
    analysis = analyze_graph(residual_chain(), excluded=["c"])
    assert groups_of(analysis) == {frozenset({"a", "b", "c"}): "'c' is excluded"}


def _group_kernels():
    """1x1x3 kernels of ones; some filters x10 so max-normalised stats are 1.0 or 0.1."""
    kernels = {name: np.ones((1, 1, 3, 8)) for name in ("a", "b", "c")}
    kernels["head"] = np.ones((1, 1, 8, 2))
    kernels["a"][..., :4] *= 10  # a: 1.0 at 0..3, 0.1 elsewhere
    kernels["b"][..., 4:6] *= 10  # b: 1.0 at 4..5
    kernels["c"][..., :1] *= 10  # c: 1.0 at 0
    return kernels


def _plan(criterion, threshold, granularity):
    settings = PruneSettings(
        threshold=threshold, min_num_filters=1, granularity=granularity, criterion=criterion
    )
    return plan_pruning(residual_chain(), _group_kernels(), settings)


def test_plan_gives_every_member_the_same_indices_from_the_merged_statistic():
    # union = max over a, b, c: 1.0 at 0..5, 0.1 at 6, 7 -> 6 filters above 0.5.
    plan = _plan("union", 0.5, 2)
    for name in ("a", "b", "c"):
        np.testing.assert_array_equal(plan.retained[name], np.arange(6))
    np.testing.assert_array_equal(plan.retained["head"], [0, 1])  # output: all kept
    np.testing.assert_array_equal(plan.input_keep("head"), np.arange(6))
    np.testing.assert_array_equal(plan.output_keep("a_bn"), np.arange(6))
    # arithmetic mean: index 0 (1 + 0.1 + 1) / 3 = 0.7, 1..5: 0.4, 6..7: 0.1 -> only index 0.
    np.testing.assert_array_equal(_plan("arithmetic_mean", 0.5, 1).retained["b"], [0])
    # intersection = min: 0.1 everywhere; above 0.05 -> all 8.
    np.testing.assert_array_equal(_plan("intersection", 0.05, 1).retained["c"], np.arange(8))
    # geometric mean: index 0 (1 * 0.1 * 1)^(1/3) = 0.464, 1..5: 0.215 -> above 0.3: index 0,
    # rounded up to granularity 4 with the tied 0.215s broken by the lowest index.
    np.testing.assert_array_equal(_plan("geometric_mean", 0.3, 4).retained["a"], [0, 1, 2, 3])


def test_add_with_the_network_input_is_never_pruned():
    config = model_config(
        [
            net_input(4),
            conv("a", "in", 4),
            layer("add", "Add", ["in", "a"]),
            conv("head", "add", 1),
        ],
        ["head"],
    )
    analysis = analyze_graph(config)
    assert analysis.group("a").fixed == "combined with the network input in 'add'"


def test_conv_behind_an_output_activation_keeps_its_filters():
    config = model_config(
        [net_input(), conv("a", "in", 4), layer("sig", "Activation", ["a"], activation="sigmoid")],
        ["sig"],
    )
    assert analyze_graph(config).group("a").fixed == "feeds model output 'sig'"


def test_single_filter_branch_is_broadcast_not_equalized():
    config = model_config(
        [
            net_input(),
            conv("gate", "in", 1),
            conv("d", "in", 4),
            conv("e", "in", 4),
            layer("mul", "Multiply", ["gate", "d"]),
            layer("add", "Add", ["mul", "e"]),
            conv("head", "add", 2),
        ],
        ["head"],
    )
    analysis = analyze_graph(config)
    assert groups_of(analysis) == {frozenset({"d", "e"}): None}
    assert analysis.group("gate").members == ["gate"]


def _refused(config, pattern, **kwargs):
    with pytest.raises(UnprunableModelError, match=pattern):
        analyze_graph(model_config(config, ["x"]), **kwargs)


def test_refusals_name_the_layer():
    base = [net_input(), conv("a", "in", 4)]
    _refused(
        base + [layer("x", "Concatenate", ["a", "a"], axis=-1)],
        "layer 'x' has type Concatenate, which pruning does not support",
    )
    _refused(
        base + [layer("x", "Activation", ["a"], activation="softmax")], "layer 'x' applies softmax"
    )
    _refused(
        base + [layer("x", "Conv2D", ["a"], filters=4, groups=2)],
        "layer 'x' .* grouped convolution",
    )
    _refused(base + [layer("x", "BatchNormalization", ["a"], axis=1)], "layer 'x' .* axis 1")
    _refused(
        base + [layer("x", "MaxPooling2D", ["a"], data_format="channels_first")],
        "layer 'x' .* channels_first",
    )
    shared = layer("x", "Conv2D", ["a"], filters=4)
    shared["inbound_nodes"].append([["in", 0, 0, {}]])
    _refused(base + [shared], "layer 'x' is used 2 times")


def test_new_pass_through_type_is_one_table_row():
    config = model_config(
        [net_input(), conv("a", "in", 4), layer("q", "MyFakeQuant", ["a"]), conv("x", "q", 2)],
        ["x"],
    )
    _refused(config["layers"], "layer 'q' has type MyFakeQuant")
    rules = DEFAULT_RULES.extended(pass_through={"MyFakeQuant": NO_WEIGHTS})
    analysis = analyze_graph(config, rules=rules)
    assert analysis.origin["q"] == "a"
    assert "MyFakeQuant" not in DEFAULT_RULES.pass_through  # the defaults are untouched


def test_settings_and_excluded_names_are_checked_with_flag_names():
    with pytest.raises(UsageError, match="-el/--excluded_layers: no layer named 'nope'"):
        plan_pruning(residual_chain(), _group_kernels(), PruneSettings(excluded=("nope",)))
    for settings, flag in [
        (PruneSettings(normalizer="L1"), "-n/--normalizer"),
        (PruneSettings(criterion="median"), "-eq/--equalization_criterion"),
        (PruneSettings(granularity=0), "-pg/--pruning_granularity"),
        (PruneSettings(min_num_filters=0), "-nf/--min_num_filters"),
        (PruneSettings(threshold=float("nan")), "-pth/--pruning_threshold"),
    ]:
        with pytest.raises(UsageError, match=flag):
            settings.validate()

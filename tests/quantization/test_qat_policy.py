"""Placement policy: which layers get weight / activation Q/DQ on TAO ResNet DetectNet_v2 graphs."""

import pytest
from qat_helpers import expected_placement

from tao_qat.common.errors import UsageError
from tao_qat.quantization.policy import (
    DEFAULT_RULES,
    OUTPUT,
    PlacementRule,
    QuantizationPolicy,
    plan_quantization,
)

REPEATS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}


@pytest.fixture(scope="module")
def resnet10_config(make_detectnet):
    return make_detectnet(10).get_config()


def test_resnet10_placement_by_hand(resnet10_config):
    plan = plan_quantization(resnet10_config)
    assert plan.activation_layers == (
        "input_1",
        "activation_1",
        "block_1a_relu_1",
        "block_1a_bn_shortcut",
        "block_1a_relu",
        "block_2a_relu_1",
        "block_2a_bn_shortcut",
        "block_2a_relu",
        "block_3a_relu_1",
        "block_3a_bn_shortcut",
        "block_3a_relu",
        "block_4a_relu_1",
        "block_4a_bn_shortcut",
    )
    assert plan.weight_layers == (
        "conv1",
        "block_1a_conv_1",
        "block_1a_conv_2",
        "block_1a_conv_shortcut",
        "block_2a_conv_1",
        "block_2a_conv_2",
        "block_2a_conv_shortcut",
        "block_3a_conv_1",
        "block_3a_conv_2",
        "block_3a_conv_shortcut",
        "block_4a_conv_1",
        "block_4a_conv_2",
        "block_4a_conv_shortcut",
    )


def test_resnet10_rule_of_each_kind_of_layer(resnet10_config):
    decisions = plan_quantization(resnet10_config).decisions
    output_rule = {name: d.output_rule for name, d in decisions.items()}
    assert output_rule["conv1_pad"] == "commuting_layer"  # pad before the conv: no Q/DQ
    assert output_rule["conv1"] == "fused_into_consumer"  # conv -> BN
    assert output_rule["bn_conv1"] == "fused_into_consumer"  # BN -> ReLU
    assert output_rule["add_1"] == "fused_into_consumer"  # Add -> ReLU
    assert output_rule["block_1a_bn_2"] == "residual_fused_branch"  # main branch of the Add
    assert output_rule["block_1a_bn_shortcut"] == "residual_input"
    assert output_rule["block_4a_relu"] == "float_consumers_only"  # feeds only the heads
    assert output_rule["output_cov"] == output_rule["output_bbox"] == "float_layer_output"
    assert decisions["output_bbox"].weights_rule == "float_layer_weights"
    assert decisions["block_1a_bn_1"].weights_rule == "no_weight_quantization"
    assert not decisions["output_cov"].quantize_weights


@pytest.mark.parametrize("num_layers", [10, 18])
@pytest.mark.parametrize("all_projections", [False, True])
def test_resnet_placement_matches_the_hand_written_rule(
    make_detectnet, num_layers, all_projections
):
    config = make_detectnet(num_layers, all_projections).get_config()
    plan = plan_quantization(config)
    activations, weights = expected_placement(REPEATS[num_layers], all_projections)
    assert sorted(plan.activation_layers) == sorted(activations)
    assert sorted(plan.weight_layers) == sorted(weights)
    # ResNet-18: 21 backbone convs (25 with all_projections); 21 (25) activation Q/DQ.
    if num_layers == 18:
        assert (
            len(plan.weight_layers)
            == len(plan.activation_layers)
            == (25 if all_projections else 21)
        )


def test_identity_shortcut_reuses_the_relu_quantizer(make_detectnet):
    # ResNet-18 block_1b: add_2([block_1b_bn_2, block_1a_relu]); block_1a_relu is already
    # quantized (it also feeds block_1b_conv_1), so no extra Q/DQ is needed on the Add input.
    decisions = plan_quantization(make_detectnet(18).get_config()).decisions
    assert decisions["block_1b_bn_2"].output_rule == "residual_fused_branch"
    assert not decisions["block_1b_bn_2"].quantize_output
    assert decisions["block_1a_relu"].quantize_output
    assert not decisions["add_2"].quantize_output


def test_without_batch_norm_the_conv_is_the_fused_branch(make_detectnet):
    decisions = plan_quantization(make_detectnet(10, use_batch_norm=False).get_config()).decisions
    assert decisions["block_1a_conv_2"].output_rule == "residual_fused_branch"
    assert decisions["block_1a_conv_shortcut"].output_rule == "residual_input"
    assert decisions["conv1"].output_rule == "fused_into_consumer"  # conv -> ReLU


def test_excluded_layers_stay_float_and_drop_useless_input_qdq(resnet10_config):
    # Excluding both readers of block_3a_relu (block 4 has stride 1, no padding layer) leaves
    # that tensor with float consumers only: its Q/DQ goes too.
    policy = QuantizationPolicy(excluded_layers=["block_4a_conv_1", "block_4a_conv_shortcut"])
    decisions = plan_quantization(resnet10_config, policy).decisions
    for name in policy.excluded_layers:
        assert not decisions[name].quantize_weights
        assert decisions[name].weights_rule == "float_layer_weights"
    assert decisions["block_3a_relu"].output_rule == "float_consumers_only"
    assert not decisions["block_3a_relu"].quantize_output
    assert decisions["block_4a_conv_2"].quantize_weights  # its neighbours are unaffected
    assert decisions["block_4a_relu_1"].quantize_output


def test_unknown_excluded_layer_is_a_usage_error(resnet10_config):
    with pytest.raises(UsageError, match="excluded_layers: 'block_9z_conv_1' is not a layer"):
        plan_quantization(resnet10_config, QuantizationPolicy(excluded_layers=["block_9z_conv_1"]))


def test_policy_values_are_checked():
    with pytest.raises(UsageError, match="ema_decay"):
        QuantizationPolicy(ema_decay=1.0)
    with pytest.raises(UsageError, match="initial_amax"):
        QuantizationPolicy(initial_amax=0.0)


def test_rules_are_data_a_new_row_changes_the_plan(resnet10_config):
    # TAO's own QAT also quantizes every Add output (before the ReLU): one extra row, placed
    # first, reproduces that.
    tao_add = PlacementRule(
        name="tao_add_output",
        target=OUTPUT,
        quantize=True,
        pattern="Add",
        why="TAO quantizes Add outputs",
        applies=lambda ctx, node: node.class_name == "Add",
    )
    plan = plan_quantization(resnet10_config, QuantizationPolicy(rules=(tao_add, *DEFAULT_RULES)))
    assert [n for n in plan.activation_layers if n.startswith("add_")] == [
        "add_1",
        "add_2",
        "add_3",
        "add_4",
    ]
    assert plan.decisions["add_1"].output_rule == "tao_add_output"


def test_every_default_rule_is_documented(repo_root):
    text = (repo_root / "docs" / "quantization.md").read_text()
    for rule in DEFAULT_RULES:
        assert f"`{rule.name}`" in text, rule.name

"""Graph surgery is exact: pruned model == original with the removed filters zeroed."""

import numpy as np
import pytest
from google.protobuf import text_format

from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.model_io import load_model_file, save_model
from tao_qat.modeling.pretrained import build_or_load_model
from tao_qat.modeling.resnet import RESNET_LAYOUTS
from tao_qat.pruning.plan import PruneSettings
from tao_qat.pruning.report import build_report
from tao_qat.pruning.run_prune import prune_model
from tao_qat.spec.proto.model_config_pb2 import ModelConfig


def outputs(model, images):
    """{output name: np.ndarray} (looked up by name, never by position)."""
    return {
        name: value.numpy()
        for name, value in zip(model.output_names, model(images, training=False), strict=True)
    }


def assert_same_outputs(got, want, rtol=1e-4):
    assert sorted(got) == sorted(want)
    for name in want:
        scale = max(1.0, float(np.abs(want[name]).max()))
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=rtol * scale)


def zero_removed_filters(model, plan):
    """Zero, in ``model``, the kernels and biases of the removed filters and the BN gamma /
    beta of the removed channels.

    Removed conv filter f then outputs exactly 0 (kernel and bias 0); the BN after it outputs
    gamma * (0 - mean) / sqrt(var + eps) + beta = 0 with gamma = beta = 0, the ReLU keeps 0 and
    every Add of the equalization group adds 0 + 0 on that channel, so every consumer
    (including the heads, which keep all their filters) receives 0 from it: the same as the
    pruned model, where the channel does not exist.
    """
    for layer in model.layers:
        node = plan.analysis.nodes[layer.name]
        weights = layer.get_weights()
        if node.kind == "prunable":
            removed = np.setdiff1d(np.arange(node.channels), plan.retained[layer.name])
            weights[0][..., removed] = 0.0
            weights[1][removed] = 0.0
        elif "BatchNormalization" in node.class_name:
            removed = np.setdiff1d(np.arange(node.channels), plan.input_keep(layer.name))
            weights[0][removed] = 0.0  # gamma
            weights[1][removed] = 0.0  # beta
        layer.set_weights(weights)


def expected_groups(num_layers, all_projections):
    """The equalization groups of TAO's ResNet (§2): the convs meeting in each stage's Adds."""
    repeats, bottleneck = RESNET_LAYOUTS[num_layers]
    last = "conv_3" if bottleneck else "conv_2"
    groups = set()
    for block, count in enumerate(repeats, start=1):
        letters = "abcdef"[:count]
        if all_projections:  # every repeat has its own shortcut conv: one group per Add
            for letter in letters:
                groups.add(
                    frozenset(
                        {f"block_{block}{letter}_{last}", f"block_{block}{letter}_conv_shortcut"}
                    )
                )
        else:  # identity shortcuts chain every repeat of a stage to the first one
            groups.add(
                frozenset(
                    {f"block_{block}a_conv_shortcut"}
                    | {f"block_{block}{letter}_{last}" for letter in letters}
                )
            )
    return groups


@pytest.mark.parametrize(
    ("num_layers", "all_projections"),
    [
        (10, False),
        (10, True),
        (18, False),
        (18, True),
        (34, False),
        (50, True),
    ],
)
def test_pruned_model_equals_original_with_removed_filters_zeroed(
    make_detectnet, images, num_layers, all_projections
):
    model = make_detectnet(num_layers, all_projections, seed=num_layers + all_projections)
    original = outputs(model, images)
    settings = PruneSettings(threshold=0.5, min_num_filters=16, granularity=8)
    pruned, plan = prune_model(model, settings)

    groups = {frozenset(g.members) for g in plan.analysis.groups if len(g.members) > 1}
    assert groups == expected_groups(num_layers, all_projections)
    for group in plan.analysis.groups:  # every member of a group keeps the same indices
        for name in group.members:
            np.testing.assert_array_equal(plan.retained[name], plan.retained[group.members[0]])
    removed = 0
    for name, keep in plan.retained.items():
        before, after = plan.analysis.nodes[name].channels, len(keep)
        assert pruned.get_layer(name).filters == after
        assert after == before or after % 8 == 0
        assert after >= min(16, before)
        removed += before - after
    assert plan.retained["output_cov"].tolist() == [0, 1]
    assert len(plan.retained["output_bbox"]) == 8
    assert removed > 0.2 * sum(
        n.channels for n in plan.analysis.nodes.values() if n.kind == "prunable"
    )
    assert pruned.count_params() < 0.8 * model.count_params()

    assert_same_outputs(outputs(model, images), original, rtol=0)  # original untouched
    got = outputs(pruned, images)
    # The test can fail: the pruned outputs differ from the unzeroed original's.
    assert np.abs(got["output_bbox"] - original["output_bbox"]).max() > 1e-2
    zero_removed_filters(model, plan)
    assert_same_outputs(got, outputs(model, images))


def test_threshold_zero_keeps_every_filter_and_the_outputs(make_detectnet, images):
    model = make_detectnet(18, False, seed=3)
    pruned, plan = prune_model(model, PruneSettings(threshold=0.0))
    assert plan.is_identity()
    assert pruned.count_params() == model.count_params()
    assert_same_outputs(outputs(pruned, images), outputs(model, images), rtol=1e-6)


def test_pruned_model_saves_reloads_and_loads_as_graph(make_detectnet, images, tmp_path):
    model = make_detectnet(10, True, seed=5, freeze_bn=True)
    pruned, plan = prune_model(model, PruneSettings(threshold=0.6, granularity=4))
    assert not plan.is_identity()
    path = save_model(pruned, tmp_path / "pruned.hdf5")
    reloaded = load_model_file(path)
    assert type(reloaded.get_layer("bn_conv1")).__name__ == "FrozenBatchNormalization"
    want = outputs(pruned, images)
    assert_same_outputs(outputs(reloaded, images), want, rtol=1e-6)

    # qat train's load_graph path (modeling.pretrained.build_or_load_model).
    model_config = text_format.Parse(
        f'arch: "resnet" num_layers: 10 all_projections: true use_batch_norm: true '
        f'pretrained_model_file: "{path}" load_graph: true '
        "objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} }",
        ModelConfig(),
    )
    loaded = build_or_load_model(model_config, None, num_classes=2, input_shape=(64, 64, 3))
    for name in ("conv1", "block_1a_conv_1", "block_4a_conv_2"):
        assert loaded.get_layer(name).filters == pruned.get_layer(name).filters
    assert_same_outputs(outputs(loaded, images), want, rtol=1e-6)


def test_report_counts_parameters_and_flops_by_hand():
    inputs = keras.Input((8, 8, 3), name="input_1")
    x = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    head = keras.layers.Conv2D(2, 1, name="head")(x)
    model = keras.Model(inputs, head)
    kernel = np.ones((3, 3, 3, 8), np.float32)
    kernel[..., 4:] = 0.1  # normalised stats 1.0 (filters 0..3) and 0.1 (4..7)
    model.get_layer("a").set_weights([kernel, np.zeros(8, np.float32)])
    settings = PruneSettings(threshold=0.5, min_num_filters=1, granularity=4)
    pruned, plan = prune_model(model, settings)
    np.testing.assert_array_equal(plan.retained["a"], [0, 1, 2, 3])
    report = build_report(model, pruned, plan, settings)
    # Parameters: a 3*3*3*8 + 8 = 224, head 8*2 + 2 = 18 -> 242; after: 112 + 10 = 122.
    assert (report.params_before, report.params_after) == (242, 122)
    assert report.pruning_ratio == pytest.approx(122 / 242)
    # FLOPs = 2 * kh*kw*Cin*F * H*W: 2*(27*8*64) + 2*(8*2*64) = 29696; after 2*(27*4*64) +
    # 2*(4*2*64) = 14848.
    assert (report.flops_before, report.flops_after) == (29696, 14848)
    assert [(r.name, r.before, r.after) for r in report.layers] == [("a", 8, 4), ("head", 2, 2)]

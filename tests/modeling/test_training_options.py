"""Regularizer losses, freeze_blocks and freeze_bn, from plain values and from spec messages."""

import numpy as np
import pytest

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import build_detectnet_v2, build_model
from tao_qat.modeling.layers import FrozenBatchNormalization
from tao_qat.modeling.regularizers import build_regularizer, make_regularizer


def _zero_all_but_cov_head(model):
    """Zero every weight, then output_cov kernel = 2.0 (512 values) and bias = 1.0."""
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    kernel, bias = model.get_layer("output_cov").get_weights()
    model.get_layer("output_cov").set_weights([np.full_like(kernel, 2.0), np.ones_like(bias)])


@pytest.mark.parametrize("kind, expected", [("L2", 2.049), ("L1", 1.025)])
def test_regularizer_count_and_value(kind, expected, make_model_config, make_regularizer_config):
    model = build_model(make_model_config(), 1, (32, 32, 3), make_regularizer_config(kind, 1e-3))
    # ResNet-10: conv1 + 4 blocks x (conv_1, conv_2, conv_shortcut) + 2 heads = 15 convs,
    # each with a kernel and a bias loss.
    assert len(model.losses) == 30
    _zero_all_but_cov_head(model)
    # L2: 1e-3 * (512 * 2.0**2 + 1 * 1.0**2) = 2.049; L1: 1e-3 * (512 * 2.0 + 1.0) = 1.025.
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-6)


def test_no_reg_and_zero_weight_give_no_losses(make_regularizer_config):
    assert build_regularizer(make_regularizer_config("NO_REG", 1e-3)) is None
    assert make_regularizer("L2", 0.0) is None
    assert build_detectnet_v2(10, 1, (32, 32, 3)).losses == []
    with pytest.raises(SpecError, match=r"regularizer.weight: must be >= 0"):
        make_regularizer("L1", -1.0)


def _train_one_step(model, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    y = [rng.random((2, 2, 2, 1), dtype=np.float32), rng.random((2, 2, 2, 4), dtype=np.float32)]
    model.compile(keras.optimizers.SGD(0.1), loss=["mse", "mse"])
    model.train_on_batch(x, y)


def _weights(model, layer_name):
    return [w.copy() for w in model.get_layer(layer_name).get_weights()]


def test_freeze_bn_keeps_moving_statistics():
    for freeze_bn in (False, True):
        model = build_detectnet_v2(10, 1, (32, 32, 3), freeze_bn=freeze_bn)
        gamma, beta, mean, var = _weights(model, "block_2a_bn_1")
        _train_one_step(model)
        new_gamma, _, new_mean, new_var = _weights(model, "block_2a_bn_1")
        bns = [ly for ly in model.layers if isinstance(ly, keras.layers.BatchNormalization)]
        frozen = [isinstance(ly, FrozenBatchNormalization) for ly in bns]
        assert frozen == [freeze_bn] * len(bns)
        # Moving statistics move only without freeze_bn (momentum 0.99 -> 1% step to batch).
        assert np.array_equal(new_mean, mean) == freeze_bn
        assert np.array_equal(new_var, var) == freeze_bn
        # gamma stays trainable either way (TAO: BN only runs in inference mode).
        assert not np.array_equal(new_gamma, gamma)


def test_freeze_blocks_stops_conv_updates_only_in_those_blocks():
    model = build_detectnet_v2(10, 1, (32, 32, 3), freeze_blocks=(0, 2))
    names = ["conv1", "block_2a_conv_1", "block_2a_conv_shortcut", "block_1a_conv_1"]
    before = {name: _weights(model, name) for name in names}
    bn_before = _weights(model, "block_2a_bn_1")
    _train_one_step(model)
    for name in names[:3]:
        assert not model.get_layer(name).trainable
        assert all(
            np.array_equal(a, b) for a, b in zip(before[name], _weights(model, name), strict=True)
        )
    assert not np.array_equal(before["block_1a_conv_1"][0], _weights(model, "block_1a_conv_1")[0])
    # BN layers of a frozen block are not frozen by freeze_blocks (TAO).
    assert model.get_layer("block_2a_bn_1").trainable
    assert not np.array_equal(bn_before[0], _weights(model, "block_2a_bn_1")[0])


def test_spec_builder_reads_model_config(make_model_config):
    config = make_model_config(
        "num_layers: 0 all_projections: true freeze_bn: true use_batch_norm: true"
    )
    model = build_model(config, 2, (32, 32, 3))
    assert model.name == "resnet18_nopool_bn_detectnet_v2"  # num_layers 0 means 18
    assert "block_4b_conv_shortcut" in [layer.name for layer in model.layers]
    assert isinstance(model.get_layer("bn_conv1"), FrozenBatchNormalization)
    assert model.output_shape == [(None, 2, 2, 2), (None, 2, 2, 8)]
    with pytest.raises(SpecError, match=r"model_config.freeze_blocks: 1.5 is not a block id"):
        build_model(make_model_config("freeze_blocks: 1.5"), 1, (32, 32, 3))
    with pytest.raises(SpecError, match=r"arch mobilenet_v2 is not supported"):
        build_model(make_model_config('arch: "mobilenet_v2"'), 1, (32, 32, 3))
    cov_input = make_model_config('objective_set { cov { input: "block_3a_relu" } }')
    assert build_model(cov_input, 1, (32, 32, 3)).get_layer("output_cov").kernel.shape[2] == 256


def test_apply_training_options_lets_the_spec_decide(make_regularizer_config):
    from tao_qat.modeling.rewrite import apply_training_options

    frozen = build_detectnet_v2(
        10,
        1,
        (32, 32, 3),
        freeze_bn=True,
        freeze_blocks=(1,),
        regularizer=make_regularizer("L2", 1),
    )
    model = apply_training_options(frozen, freeze_blocks=(0,), input_shape=(64, 64, 3))
    assert frozen.get_layer("conv1").trainable  # the original is not modified
    assert not [ly for ly in model.layers if isinstance(ly, FrozenBatchNormalization)]
    assert not model.get_layer("conv1").trainable
    assert model.get_layer("block_1a_conv_1").trainable
    assert model.losses == []
    assert model.output_shape == [(None, 4, 4, 1), (None, 4, 4, 4)]
    for layer in frozen.layers:
        got = model.get_layer(layer.name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(got, layer.get_weights(), strict=True))

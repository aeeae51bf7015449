"""create_qat_model: exact placement on ResNet graphs, numerics, non-mutation, freezing, losses."""

import numpy as np
import pytest
from qat_helpers import expected_placement, walk_qat_model

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.quantization import QuantizationPolicy, create_qat_model, is_qat_model, numeric

REPEATS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}


@pytest.mark.parametrize("num_layers", [10, 18])
@pytest.mark.parametrize("all_projections", [False, True])
def test_qat_model_has_exactly_the_planned_quantizers(make_detectnet, num_layers, all_projections):
    model = make_detectnet(num_layers, all_projections)
    qat = create_qat_model(model)
    found = walk_qat_model(qat)
    activations, weights = expected_placement(REPEATS[num_layers], all_projections)
    assert sorted(found["activations"]) == sorted(activations)
    assert sorted(found["weights"]) == sorted(weights)
    # One Q/DQ per fused block, after the ReLU; BN outputs are quantized only for the
    # projection shortcut feeding an Add; never a conv output (not between conv, BN, ReLU).
    for name, kind in found["activations"].items():
        if name == "input_1":
            assert kind == "InputLayer"
        elif name.endswith("bn_shortcut"):
            assert kind == "BatchNormalization"
        else:
            assert kind == "Activation", name
    assert set(found["weights"].values()) == {(0, 1, 2)}  # per output channel of HWIO
    # Heads untouched, outputs still named as the float model's.
    assert {"output_cov", "output_bbox"} <= set(found["plain"])
    assert qat.output_names == ["output_cov", "output_bbox"] == model.output_names
    assert type(qat.get_layer("output_bbox")) is keras.layers.Conv2D
    assert len(qat.layers) == len(model.layers) + 1  # + quant_input_1
    assert qat.name == model.name
    assert is_qat_model(qat) and not is_qat_model(model)


def test_tiny_model_matches_a_numpy_simulation():
    # input_1 -> conv_a (1x1) -> relu_a -> conv_b (1x1) -> output_bbox (1x1).
    # Plan: Q/DQ on input_1 and relu_a (amax 6 before training), per-channel weights of conv_a
    # and conv_b; conv_b feeds only the float head (no Q/DQ); output_bbox stays float.
    rng = np.random.default_rng(3)
    inputs = keras.Input((3, 3, 2), name="input_1")
    x = keras.layers.Conv2D(3, 1, name="conv_a")(inputs)
    x = keras.layers.Activation("relu", name="relu_a")(x)
    x = keras.layers.Conv2D(4, 1, name="conv_b")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="output_bbox")(x))
    for layer in (model.get_layer(n) for n in ("conv_a", "conv_b", "output_bbox")):
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(size=kernel.shape) * 2, rng.normal(size=bias.shape)])
    qat = create_qat_model(model)
    images = rng.uniform(0, 5, (2, 3, 3, 2)).astype(np.float32)

    def conv(x, name, quantize):
        kernel, bias = model.get_layer(name).get_weights()
        if quantize:
            kernel = numeric.fake_quantize(kernel, numeric.weight_amax(kernel, (0, 1, 2), True))
        return np.einsum("bhwc,cd->bhwd", x, kernel[0, 0]) + bias

    h = np.maximum(conv(numeric.fake_quantize(images, 6.0), "conv_a", True), 0)
    expected = conv(conv(numeric.fake_quantize(h, 6.0), "conv_b", True), "output_bbox", False)
    np.testing.assert_allclose(qat(images, training=False), expected, rtol=1e-5, atol=1e-5)


def test_per_tensor_weights_and_ema_settings_reach_the_quantizers(make_detectnet):
    policy = QuantizationPolicy(per_channel_weights=False, ema_decay=0.99, initial_amax=4.0)
    qat = create_qat_model(make_detectnet(10), policy)
    assert set(walk_qat_model(qat)["weights"].values()) == {None}
    quantizer = qat.get_layer("quant_input_1").quantizer
    assert (quantizer.ema_decay, quantizer.initial_amax) == (0.99, 4.0)
    amax = qat.get_layer("quant_block_1a_relu_1").output_quantizer_variables()["amax"]
    assert float(amax.numpy()) == 4.0


def test_training_step_updates_qat_only_and_ranges_follow_the_data(make_detectnet, images):
    model = make_detectnet(10)
    before = [w.numpy().copy() for w in model.weights]
    qat = create_qat_model(model)
    assert not {id(v) for v in qat.weights} & {id(v) for v in model.weights}
    optimizer = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        cov, bbox = qat(images, training=True)
        loss = tf.reduce_mean(tf.square(cov - 1.0)) + tf.reduce_mean(tf.square(bbox))
    grads = tape.gradient(loss, qat.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, qat.trainable_variables, strict=True))
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())  # float model untouched
    kernel = next(v for v in qat.get_layer("quant_conv1").weights if "kernel" in v.name)
    assert not np.allclose(kernel.numpy(), model.get_layer("conv1").kernel.numpy())
    # First step: the zero-debiased EMA equals the batch max |x| (here of the images).
    input_amax = qat.get_layer("quant_input_1").quantizer_vars["amax"]
    assert float(input_amax.numpy()) == pytest.approx(float(images.max()), rel=1e-6)


def test_frozen_blocks_stay_frozen_and_regularizers_are_kept(make_detectnet):
    model = make_detectnet(10, freeze_blocks=(0, 1), regularizer=keras.regularizers.L2(1e-3))
    qat = create_qat_model(model)

    def names(variables):
        return sorted(v.name.split(":")[0].removeprefix("quant_") for v in variables)

    assert names(qat.trainable_variables) == names(model.trainable_variables)
    assert "conv1/kernel" not in names(qat.trainable_variables)
    assert "block_2a_conv_1/kernel" in names(qat.trainable_variables)
    # 13 backbone convs + 2 heads, each with kernel and bias L2 terms: 30, same values.
    assert len(qat.losses) == len(model.losses) == 30
    np.testing.assert_allclose(
        sorted(float(v) for v in qat.losses), sorted(float(v) for v in model.losses), rtol=1e-6
    )


def test_excluded_layers_are_copied_plain(make_detectnet):
    policy = QuantizationPolicy(excluded_layers=("block_3a_conv_shortcut",))
    qat = create_qat_model(make_detectnet(10), policy)
    assert type(qat.get_layer("block_3a_conv_shortcut")) is keras.layers.Conv2D
    assert "block_3a_bn_shortcut" in walk_qat_model(qat)["activations"]


def test_refuses_quantized_sequential_and_shared_layer_models(make_detectnet):
    qat = create_qat_model(make_detectnet(10))
    with pytest.raises(UsageError, match="already quantized"):
        create_qat_model(qat)
    sequential = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(UsageError, match="functional"):
        create_qat_model(sequential)
    inputs = keras.Input((4, 4, 3))
    shared = keras.layers.Conv2D(3, 1, name="shared")
    with pytest.raises(UsageError, match="shared layer"):
        create_qat_model(keras.Model(inputs, shared(shared(inputs))))

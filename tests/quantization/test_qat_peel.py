"""extract_quantization: the float model and the scales dict peeled out of a QAT model."""

import numpy as np
import pytest

from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.quantization import (
    QuantizationPolicy,
    create_qat_model,
    extract_quantization,
    is_qat_model,
)
from tao_qat.quantization.policy import plan_quantization


@pytest.fixture(scope="module")
def resnet18(make_detectnet):
    return make_detectnet(18, all_projections=True)


def test_peel_out_of_a_fresh_qat_model_gives_back_the_float_model(resnet18, images):
    qat = create_qat_model(resnet18)
    float_model, activation_amax, weight_amax = extract_quantization(qat)
    assert not is_qat_model(float_model)
    assert [layer.name for layer in float_model.layers] == [layer.name for layer in resnet18.layers]
    assert float_model.get_config() == resnet18.get_config()
    for peeled, original in zip(float_model.weights, resnet18.weights, strict=True):
        assert peeled.name == original.name
        np.testing.assert_array_equal(peeled.numpy(), original.numpy())
    for peeled, original in zip(float_model(images), resnet18(images), strict=True):
        np.testing.assert_array_equal(peeled.numpy(), original.numpy())
    # Scales dict (docs/design.md): keyed by the float layer whose output is quantized.
    plan = plan_quantization(resnet18.get_config())
    assert list(activation_amax) == list(plan.activation_layers)
    assert set(activation_amax.values()) == {6.0}  # TAO's initial amax, no step taken
    assert list(weight_amax) == list(plan.weight_layers)
    kernel = resnet18.get_layer("block_2a_conv_1").kernel.numpy()  # [3, 3, 64, 128]
    assert weight_amax["block_2a_conv_1"].dtype == np.float32
    np.testing.assert_array_equal(weight_amax["block_2a_conv_1"], np.abs(kernel).max((0, 1, 2)))


def test_peel_out_after_training_carries_the_trained_weights_and_ranges(make_detectnet, images):
    qat = create_qat_model(make_detectnet(10), QuantizationPolicy(per_channel_weights=False))
    optimizer = keras.optimizers.SGD(0.05)
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_mean(tf.square(out)) for out in qat(images, training=True)])
    optimizer.apply_gradients(
        zip(tape.gradient(loss, qat.trainable_variables), qat.trainable_variables, strict=True)
    )
    float_model, activation_amax, weight_amax = extract_quantization(qat)
    trained = next(v for v in qat.get_layer("quant_conv1").weights if "kernel" in v.name).numpy()
    np.testing.assert_array_equal(float_model.get_layer("conv1").kernel.numpy(), trained)
    # Kernels are exported float (not pre-quantized), ranges per tensor: max |w| (a float).
    assert weight_amax["conv1"] == pytest.approx(float(np.abs(trained).max()))
    assert isinstance(weight_amax["conv1"], float)
    # First training step: input amax = max |image|, other ranges moved away from 6.0.
    assert activation_amax["input_1"] == pytest.approx(float(images.max()), rel=1e-6)
    assert all(value != 6.0 and value > 0 for value in activation_amax.values())
    # The head weights come through unchanged by quantization.
    np.testing.assert_array_equal(
        float_model.get_layer("output_bbox").get_weights()[0],
        qat.get_layer("output_bbox").get_weights()[0],
    )

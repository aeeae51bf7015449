"""QAT models save, load and resume: Keras .hdf5 (model_io) and tf.train.Checkpoint."""

import numpy as np
import pytest

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.modeling.model_io import load_model_file, read_model_config, save_model
from tao_qat.quantization import (
    QAT_CUSTOM_OBJECTS,
    create_qat_model,
    extract_quantization,
    is_qat_model,
)
from tao_qat.quantization.naming import is_qat_config
from tao_qat.quantization.peel import quantizer_map


def train_step(model, optimizer, images):
    with tf.GradientTape() as tape:
        cov, bbox = model(images, training=True)
        loss = tf.reduce_mean(tf.square(cov - 0.5)) + tf.reduce_mean(tf.square(bbox))
    optimizer.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=True)
    )


def amax_state(model):
    activations, _ = quantizer_map(model)
    return {
        k: (float(v["amax"].numpy()), float(v["amax_weight"].numpy()))
        for k, v in activations.items()
    }


def test_hdf5_round_trip_keeps_quantizers_and_ranges(make_detectnet, images, tmp_path):
    qat = create_qat_model(make_detectnet(10, freeze_blocks=(0,)))
    train_step(qat, keras.optimizers.SGD(0.01), images)
    path = save_model(qat, tmp_path / "qat.hdf5")
    loaded = load_model_file(path, custom_objects=QAT_CUSTOM_OBJECTS)
    assert is_qat_model(loaded)
    assert loaded.output_names == ["output_cov", "output_bbox"]
    assert amax_state(loaded) == amax_state(qat)
    for a, b in zip(loaded(images, training=False), qat(images, training=False), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # fake quantization active
    assert not loaded.get_layer("quant_conv1").trainable_weights  # freeze_blocks survives
    peeled, peeled_loaded = extract_quantization(qat), extract_quantization(loaded)
    assert peeled[1] == peeled_loaded[1]  # activation amax
    for name, amax in peeled[2].items():
        np.testing.assert_array_equal(amax, peeled_loaded[2][name])
    # Training continues the moving average: weight 1 - 0.999**2 after the second step.
    train_step(loaded, keras.optimizers.SGD(0.01), images)
    assert amax_state(loaded)["input_1"][1] == pytest.approx(1 - 0.999**2, rel=1e-5)
    with pytest.raises(UsageError, match="already quantized"):
        create_qat_model(loaded)


def test_hdf5_of_a_qat_model_loads_without_extra_arguments(make_detectnet, images, tmp_path):
    float_model = make_detectnet(10)
    qat = create_qat_model(float_model)
    path = save_model(qat, tmp_path / "qat.hdf5")
    float_path = save_model(float_model, tmp_path / "float.hdf5")
    # TF-free check of a file's config: model_io registers QAT_CUSTOM_OBJECTS only then.
    assert is_qat_config(read_model_config(path))
    assert not is_qat_config(read_model_config(float_path))
    loaded = load_model_file(path)
    for a, b in zip(loaded(images, training=False), qat(images, training=False), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_tf_checkpoint_resume_continues_training_identically(make_detectnet, images, tmp_path):
    float_model = make_detectnet(10)
    qat, optimizer = create_qat_model(float_model), keras.optimizers.Adam(1e-3)
    train_step(qat, optimizer, images)
    prefix = tf.train.Checkpoint(model=qat, optimizer=optimizer).write(str(tmp_path / "ckpt"))

    # Resume as the trainer does: same float model -> same rewrite -> restore.
    resumed, resumed_optimizer = create_qat_model(make_detectnet(10)), keras.optimizers.Adam(1e-3)
    status = tf.train.Checkpoint(model=resumed, optimizer=resumed_optimizer).read(prefix)
    status.assert_existing_objects_matched()
    assert amax_state(resumed) == amax_state(qat)
    for a, b in zip(resumed.weights, qat.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    second = images[::-1] * 0.5
    train_step(qat, optimizer, second)
    train_step(resumed, resumed_optimizer, second)
    assert resumed_optimizer.iterations.numpy() == 2
    for a, b in zip(resumed.weights, qat.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

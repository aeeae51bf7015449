"""pretrained_model_file and load_graph: weights by name, whole graphs, build_or_load_model."""

import copy
import logging

import numpy as np
import pytest

from tao_qat.common.errors import DataError, SpecError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import build_detectnet_v2
from tao_qat.modeling.layers import FrozenBatchNormalization
from tao_qat.modeling.model_io import save_model
from tao_qat.modeling.pretrained import (
    build_or_load_model,
    load_pretrained_weights,
    read_layer_weights,
)


@pytest.fixture(scope="module")
def one_class_file(tmp_path_factory):
    """A trained-looking ResNet-10 (1 class, 32x32) saved as .hdf5 and as .h5 weights."""
    folder = tmp_path_factory.mktemp("pretrained")
    model = build_detectnet_v2(10, 1, (32, 32, 3))
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    save_model(model, folder / "model.hdf5")
    model.save_weights(folder / "weights.h5")
    return model, folder


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("file_name", ["model.hdf5", "weights.h5"])
def test_weights_by_name_skip_shape_mismatches(one_class_file, file_name, caplog):
    source, folder = one_class_file
    # 2 classes: heads differ in shape; all_projections adds shortcut convs the file lacks.
    target = build_detectnet_v2(10, 2, (64, 64, 3), all_projections=True)
    head_before = target.get_layer("output_cov").get_weights()
    with caplog.at_level(logging.INFO):
        report = load_pretrained_weights(target, folder / file_name)
    assert sorted(report.mismatched) == ["output_bbox", "output_cov"]
    assert report.absent == []  # ResNet-10 has one repeat per block: already all projections
    assert "skipped 2 layers whose weight shapes differ" in caplog.text
    # conv1 + 4 blocks x (conv_1, bn_1, conv_2, bn_2, conv_shortcut, bn_shortcut) + bn_conv1.
    assert len(report.loaded) == 2 + 4 * 6
    for name in report.loaded:
        assert _same(target.get_layer(name).get_weights(), source.get_layer(name).get_weights())
    assert _same(target.get_layer("output_cov").get_weights(), head_before)


def test_read_layer_weights_keeps_keras_order(one_class_file):
    source, folder = one_class_file
    weights = read_layer_weights(folder / "model.hdf5")
    gamma, beta, mean, var = weights["bn_conv1"]
    assert _same([gamma, beta, mean, var], source.get_layer("bn_conv1").get_weights())
    with pytest.raises(DataError, match=r"nothing.h5: pretrained model file not found"):
        read_layer_weights(folder / "nothing.h5")


def test_build_or_load_fresh_and_pretrained(
    one_class_file, make_model_config, make_regularizer_config
):
    source, folder = one_class_file
    reg = make_regularizer_config("L1", 1e-5)
    fresh = build_or_load_model(make_model_config(), reg, 1, (32, 32, 3))
    assert not _same(fresh.get_weights(), source.get_weights())
    config = make_model_config(
        f'pretrained_model_file: "{folder / "model.hdf5"}" freeze_blocks: [0, 1]'
    )
    model = build_or_load_model(config, reg, 1, (32, 32, 3))
    assert _same(model.get_weights(), source.get_weights())
    assert not model.get_layer("block_1a_conv_1").trainable
    assert len(model.losses) == 30
    for text, message in [
        ("freeze_blocks: 1", r"freeze_blocks: needs model_config.pretrained_model_file"),
        ("load_graph: true", r"model_config.load_graph: needs model_config.pretrained_model_file"),
    ]:
        with pytest.raises(SpecError, match=message):
            build_or_load_model(make_model_config(text), reg, 1, (32, 32, 3))
    # A key given for a plain pretrained file is ignored (the file is read as is, with a warning).
    model = build_or_load_model(config, reg, 1, (32, 32, 3), key="tlt_encode")
    assert _same(model.get_weights(), source.get_weights())


@pytest.fixture(scope="module")
def pruned_file(one_class_file, tmp_path_factory):
    """A 'pruned' graph: block_1a_conv_1 keeps 24 of its 64 filters (no regularizer inside)."""
    source, _ = one_class_file
    config = copy.deepcopy(source.get_config())
    for entry in config["layers"]:
        if entry["config"]["name"] == "block_1a_conv_1":
            entry["config"]["filters"] = 24
    pruned = keras.Model.from_config(config)
    for layer in source.layers:
        if layer.name not in ("block_1a_conv_1", "block_1a_bn_1", "block_1a_conv_2"):
            pruned.get_layer(layer.name).set_weights(layer.get_weights())
    path = tmp_path_factory.mktemp("pruned") / "pruned.hdf5"
    save_model(pruned, path)
    return pruned, path


def test_load_graph_keeps_the_pruned_graph_and_applies_the_spec(
    pruned_file, make_model_config, make_regularizer_config
):
    pruned, path = pruned_file
    config = make_model_config(
        f'pretrained_model_file: "{path}" load_graph: true freeze_bn: true freeze_blocks: 4'
    )
    model = build_or_load_model(config, make_regularizer_config("L2", 1e-3), 1, (64, 64, 3))
    assert model.get_layer("block_1a_conv_1").filters == 24
    assert len(model.losses) == 30  # regularizer re-applied to the 15 convs (kernel + bias)
    assert isinstance(model.get_layer("block_3a_bn_1"), FrozenBatchNormalization)
    assert not model.get_layer("block_4a_conv_2").trainable
    assert model.get_layer("block_3a_conv_2").trainable
    assert model.output_names == ["output_cov", "output_bbox"]
    assert model.output_shape == [(None, 4, 4, 1), (None, 4, 4, 4)]  # input resized to 64x64
    assert _same(model.get_weights(), pruned.get_weights())


def test_load_graph_checks_heads(pruned_file, make_model_config):
    _, path = pruned_file
    text = f'pretrained_model_file: "{path}" load_graph: true'
    with pytest.raises(
        SpecError,
        match=r"output_cov has 1 channels, expected 3; output_bbox has 4"
        r" channels, expected 12 for 3 target classes \(set model_config.allow",
    ):
        build_or_load_model(make_model_config(text), None, 3, (32, 32, 3))
    allowed = make_model_config(text + " allow_loaded_model_modification: true")
    model = build_or_load_model(allowed, None, 3, (32, 32, 3))
    assert model.output_shape == [(None, 2, 2, 3), (None, 2, 2, 12)]
    assert model.get_layer("block_1a_conv_1").filters == 24
    with pytest.raises(DataError, match=r"model input has 3 channels but the spec asks for 1"):
        build_or_load_model(make_model_config(text), None, 1, (32, 32, 1))

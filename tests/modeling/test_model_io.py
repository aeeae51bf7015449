"""Saving and safe loading of model files: round trip, refusal of embedded code, bad files."""

import json

import h5py
import numpy as np
import pytest

from tao_qat.common.errors import DataError, OutputExistsError, UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import build_detectnet_v2
from tao_qat.modeling.layers import FrozenBatchNormalization
from tao_qat.modeling.model_io import load_model_file, read_model_config, save_model
from tao_qat.modeling.regularizers import make_regularizer


@pytest.fixture(scope="module")
def tiny_model():
    return build_detectnet_v2(
        10, 2, (32, 32, 3), freeze_bn=True, regularizer=make_regularizer("L2", 1e-4)
    )


def test_save_load_round_trip(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "model.hdf5")
    assert [p.name for p in tmp_path.iterdir()] == ["model.hdf5"]  # no temp file left
    loaded = load_model_file(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in tiny_model.layers]
    assert isinstance(loaded.get_layer("bn_conv1"), FrozenBatchNormalization)
    assert loaded.output_names == ["output_cov", "output_bbox"]
    assert loaded.optimizer is None  # saved without optimizer, loaded uncompiled
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    for got, want in zip(loaded(x), tiny_model(x), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(sum(loaded.losses)), float(sum(tiny_model.losses)), rtol=1e-6)


def test_save_refuses_to_overwrite_without_force(tiny_model, tmp_path):
    path = tmp_path / "model.hdf5"
    path.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="model.hdf5: already exists"):
        save_model(tiny_model, path)
    assert path.read_bytes() == b"old"
    save_model(tiny_model, path, force=True)
    assert read_model_config(path)["config"]["name"] == tiny_model.name


def test_lambda_layer_is_refused_before_it_can_run(tmp_path):
    marker = tmp_path / "pwned.txt"
    marker_path = str(marker)

    def evil(x):  # the marshalled bytecode of this function is stored in the file
        with open(marker_path, "w") as handle:
            handle.write("code from the model file ran")
        return x

    inputs = keras.Input((4, 4, 3), name="input_1")
    outputs = keras.layers.Lambda(evil, name="foo")(inputs)
    path = tmp_path / "model.hdf5"
    save_model(keras.Model(inputs, outputs), path)
    marker.unlink()  # written while building the model above
    # Plain Keras runs the embedded code on load (what we protect against):
    keras.models.load_model(path, compile=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DataError) as err:
        load_model_file(path)
    assert str(err.value) == (
        f"{path}: layer 'foo' of type Lambda would run code embedded in the file; "
        "refusing to load it"
    )
    assert not marker.exists()


def _rewrite_config(path, edit):
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        edit(config)
        handle.attrs["model_config"] = json.dumps(config)


def test_unknown_layer_class_and_foreign_modules_are_refused(tiny_model, tmp_path):
    path = save_model(tiny_model, tmp_path / "model.hdf5")

    def rename_class(config):
        config["config"]["layers"][3]["class_name"] = "MyPlugin"

    _rewrite_config(path, rename_class)
    with pytest.raises(DataError, match=r"layer 'bn_conv1' has type MyPlugin, which is neither"):
        load_model_file(path)

    path = save_model(tiny_model, tmp_path / "model2.hdf5")

    def foreign_initializer(config):
        conv = config["config"]["layers"][2]["config"]
        conv["kernel_initializer"] = {"module": "os", "class_name": "system", "config": {}}

    _rewrite_config(path, foreign_initializer)
    with pytest.raises(DataError, match=r"layer 'conv1' refers to system from module os"):
        load_model_file(path)


def test_trusted_custom_objects_extend_the_allow_list(tmp_path):
    class Scale(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((4, 4, 3), name="input_1")
    path = tmp_path / "model.hdf5"
    save_model(keras.Model(inputs, Scale(name="scale")(inputs)), path)
    with pytest.raises(DataError, match=r"layer 'scale' has type Scale"):
        load_model_file(path)
    assert load_model_file(path, custom_objects={"Scale": Scale}).get_layer("scale").name == "scale"


def test_bad_files_raise_data_error_naming_them(tmp_path, tiny_model):
    missing = tmp_path / "missing.hdf5"
    with pytest.raises(DataError, match=rf"^{missing}: model file not found$"):
        load_model_file(missing)
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"this is not HDF5" * 10)
    with pytest.raises(DataError, match=rf"^{corrupt}: not a readable HDF5 model file"):
        load_model_file(corrupt)
    weights_only = tmp_path / "weights.h5"
    tiny_model.save_weights(weights_only)
    with pytest.raises(DataError, match=r"weights.h5: holds no model graph"):
        load_model_file(weights_only)


def test_encrypted_model_needs_its_key(tiny_model, tmp_path):
    # Full coverage of encryption: tests/reliability/test_reliability_encryption.py.
    path = save_model(tiny_model, tmp_path / "model.tlt", key="nvidia_tlt")
    with pytest.raises(UsageError, match=r"model.tlt: is encrypted; give -k/--key$"):
        load_model_file(path)
    assert load_model_file(path, key="nvidia_tlt").output_names == ["output_cov", "output_bbox"]

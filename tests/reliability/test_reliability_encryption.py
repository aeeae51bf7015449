"""Encrypted model files (-k/--key): format, round trips, wrong / missing key, tampering, safety."""

import logging
import stat

import h5py
import numpy as np
import pytest

from tao_qat.common import crypto
from tao_qat.common.errors import DataError, OutputExistsError, UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.detectnet import build_detectnet_v2
from tao_qat.modeling.model_io import (
    load_bytes,
    load_model_file,
    read_model_config,
    save_bytes,
    save_model,
)
from tao_qat.modeling.pretrained import build_or_load_model, read_layer_weights

KEY = "tlt_encode"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_model():
    return build_detectnet_v2(10, 1, (32, 32, 3))


@pytest.fixture(scope="module")
def encrypted_model(tiny_model, tmp_path_factory):
    """(path, model): ``tiny_model`` saved encrypted with KEY as model.tlt."""
    path = tmp_path_factory.mktemp("encrypted") / "model.tlt"
    return save_model(tiny_model, path, key=KEY), tiny_model


def test_byte_format_round_trip():
    plain = b"\x89HDF" + bytes(range(256)) * 4
    blob = crypto.encrypt_bytes(plain, KEY)
    # magic(10) kdf(1) log2_n(1) r(1) p(1) salt(16) nonce(12) = 42 header bytes, + 16-byte tag
    assert blob[:10] == b"TAOQATENC1" and blob[10:14] == bytes([1, 14, 8, 1])
    assert len(blob) == 42 + len(plain) + 16
    assert plain[8:] not in blob  # the content is not readable
    assert crypto.decrypt_bytes(blob, KEY) == plain
    again = crypto.encrypt_bytes(plain, KEY)
    assert again[14:42] != blob[14:42] and again[42:] != blob[42:]  # fresh salt and nonce
    assert crypto.decrypt_bytes(crypto.encrypt_bytes(b"", "k"), "k") == b""
    assert crypto.decrypt_bytes(crypto.encrypt_bytes(b"x", "clé"), "clé".encode()) == b"x"


def test_wrong_key_is_one_clear_error():
    blob = crypto.encrypt_bytes(b"weights", KEY)
    with pytest.raises(DataError) as err:
        crypto.decrypt_bytes(blob, "tlt_encode ", source="m.tlt")
    assert str(err.value) == "m.tlt: wrong key (or the file is corrupt): authentication failed"


def test_missing_or_empty_key_is_a_usage_error():
    blob = crypto.encrypt_bytes(b"weights", KEY)
    for key in (None, ""):
        with pytest.raises(UsageError) as err:
            crypto.decrypt_bytes(blob, key, source="m.tlt")
        assert str(err.value) == "m.tlt: is encrypted; give -k/--key"
        assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="empty key cannot encrypt"):
        crypto.encrypt_bytes(b"x", "")


@pytest.mark.parametrize("offset", [10, 13, 14, 30, 42, 60, -1])
def test_any_changed_byte_fails_authentication(offset):
    # 10: kdf id, 13: p, 14: salt, 30: nonce, 42: ciphertext, -1: tag
    blob = bytearray(crypto.encrypt_bytes(b"0123456789" * 5, KEY))
    blob[offset] ^= 0x01
    match = r"unsupported key derivation" if offset in (10, 13) else r"wrong key \(or the file"
    with pytest.raises(DataError, match=match):
        crypto.decrypt_bytes(bytes(blob), KEY)


def test_truncated_crafted_and_newer_files_are_refused():
    blob = crypto.encrypt_bytes(b"0123456789", KEY)
    with pytest.raises(DataError, match=r"truncated encrypted file \(30 bytes, the header"):
        crypto.decrypt_bytes(blob[:30], KEY)
    with pytest.raises(DataError, match="wrong key"):
        crypto.decrypt_bytes(blob[:-1], KEY)
    # A crafted header asking for 2**40 scrypt cost is refused before any work.
    with pytest.raises(DataError, match=r"unsupported key derivation .*log2_n 40"):
        crypto.decrypt_bytes(blob[:11] + bytes([40]) + blob[12:], KEY)
    with pytest.raises(DataError, match=r"format 'TAOQATENC2'.* reads TAOQATENC1"):
        crypto.decrypt_bytes(b"TAOQATENC2" + blob[10:], KEY)


def test_encrypted_model_round_trip(encrypted_model, tmp_path):
    path, model = encrypted_model
    data = path.read_bytes()
    assert data.startswith(b"TAOQATENC1") and HDF5_SIGNATURE not in data[:64]
    assert crypto.is_encrypted(path) and not h5py.is_hdf5(path)
    assert [p.name for p in path.parent.iterdir()] == ["model.tlt"]  # no plain temp file left
    loaded = load_model_file(path, key=KEY)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = np.random.default_rng(1).random((1, 32, 32, 3), dtype=np.float32)
    for got, want in zip(loaded(x), model(x), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    assert read_model_config(path, key=KEY)["config"]["name"] == model.name
    # The extension does not matter: the magic bytes decide.
    copy = tmp_path / "copy.hdf5"
    copy.write_bytes(data)
    assert load_model_file(copy, key=KEY).name == model.name


def test_encrypted_model_without_or_with_wrong_key(encrypted_model):
    path, _ = encrypted_model
    with pytest.raises(UsageError) as err:
        load_model_file(path)
    assert str(err.value) == f"{path}: is encrypted; give -k/--key"
    with pytest.raises(DataError) as err:
        load_model_file(path, key="nvidia_tlt")
    assert str(err.value) == f"{path}: wrong key (or the file is corrupt): authentication failed"
    with pytest.raises(UsageError, match="is encrypted"):
        read_model_config(path)


def test_tampered_model_file_fails_authentication(encrypted_model, tmp_path):
    path, _ = encrypted_model
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80
    tampered = tmp_path / "tampered.tlt"
    tampered.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"tampered.tlt: wrong key \(or the file is corrupt\)"):
        load_model_file(tampered, key=KEY)


def test_without_key_files_stay_plain_hdf5(tiny_model, tmp_path, caplog):
    for key in (None, ""):
        path = save_model(tiny_model, tmp_path / f"plain{key!r}.hdf5", key=key)
        assert path.read_bytes()[:8] == HDF5_SIGNATURE and not crypto.is_encrypted(path)
        assert h5py.is_hdf5(path)
    # A key given for a plain file: it is read as is, with one warning (documented policy).
    with caplog.at_level(logging.WARNING):
        loaded = load_model_file(path, key=KEY)
    assert loaded.name == tiny_model.name
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: is not encrypted; reading it without the key"
    ]


def test_encrypted_save_refuses_to_overwrite_without_force(tiny_model, tmp_path):
    path = tmp_path / "model.tlt"
    path.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        save_model(tiny_model, path, key=KEY)
    assert path.read_bytes() == b"old"
    save_model(tiny_model, path, key=KEY, force=True)
    assert crypto.is_encrypted(path)


def test_encrypted_lambda_model_is_still_refused(tmp_path):
    marker = tmp_path / "pwned.txt"
    marker_path = str(marker)

    def evil(x):
        with open(marker_path, "w") as handle:
            handle.write("code from the model file ran")
        return x

    inputs = keras.Input((4, 4, 3), name="input_1")
    path = tmp_path / "evil.tlt"
    save_model(keras.Model(inputs, keras.layers.Lambda(evil, name="foo")(inputs)), path, key=KEY)
    marker.unlink()  # written while building the model above
    with pytest.raises(DataError) as err:
        load_model_file(path, key=KEY)
    assert str(err.value) == (
        f"{path}: layer 'foo' of type Lambda would run code embedded in the file; "
        "refusing to load it"
    )
    assert not marker.exists()


def test_encrypted_pretrained_weights_and_load_graph(encrypted_model, tmp_path):
    from google.protobuf import text_format

    from tao_qat.spec.proto.model_config_pb2 import ModelConfig

    path, model = encrypted_model
    weights = read_layer_weights(path, key=KEY)
    np.testing.assert_array_equal(weights["conv1"][0], model.get_layer("conv1").get_weights()[0])
    with pytest.raises(UsageError, match="is encrypted; give -k/--key"):
        read_layer_weights(path)
    for extra in ("", "load_graph: true"):
        config = text_format.Parse(
            f'arch: "resnet" num_layers: 10 pretrained_model_file: "{path}" {extra} '
            "objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} }",
            ModelConfig(),
        )
        built = build_or_load_model(config, None, 1, (32, 32, 3), key=KEY)
        np.testing.assert_array_equal(
            built.get_layer("conv1").get_weights()[0], model.get_layer("conv1").get_weights()[0]
        )
        with pytest.raises(DataError, match="wrong key"):
            build_or_load_model(config, None, 1, (32, 32, 3), key="other")


def test_bytes_helpers_for_other_model_files(tmp_path, caplog):
    onnx_like = b"\x08\x07fake onnx model bytes"
    path = save_bytes(tmp_path / "model.onnx", onnx_like, key=KEY)
    assert crypto.is_encrypted(path) and load_bytes(path, key=KEY) == onnx_like
    with pytest.raises(UsageError, match="model.onnx: is encrypted; give -k/--key"):
        load_bytes(path)
    with pytest.raises(OutputExistsError):
        save_bytes(path, onnx_like, key=KEY)
    plain = save_bytes(tmp_path / "plain.onnx", onnx_like)
    assert plain.read_bytes() == onnx_like and load_bytes(plain) == onnx_like
    with pytest.raises(DataError, match="nothing.onnx: file not found"):
        load_bytes(tmp_path / "nothing.onnx")


def test_decrypt_to_temp_is_private_and_removed(tmp_path):
    encrypted = crypto.encrypt_file(
        crypto.save_bytes(tmp_path / "m.onnx", b"plain model"), tmp_path / "m.onnx.enc", KEY
    )
    with pytest.raises(UsageError, match="is already encrypted"):
        crypto.encrypt_file(encrypted, tmp_path / "twice.enc", KEY)
    with crypto.decrypt_to_temp(encrypted, KEY, suffix=".onnx") as plain:
        assert plain.name == "m.onnx.onnx" and plain.read_bytes() == b"plain model"
        assert stat.S_IMODE(plain.stat().st_mode) == 0o600
        assert stat.S_IMODE(plain.parent.stat().st_mode) == 0o700
        assert plain.parent != tmp_path
    assert not plain.exists() and not plain.parent.exists()
    with crypto.plain_file(tmp_path / "m.onnx") as same:
        assert same == tmp_path / "m.onnx"
    with crypto.plain_file(encrypted, KEY) as decrypted:
        assert decrypted.read_bytes() == b"plain model"
    assert not decrypted.exists()


def test_foreign_tlt_file_gets_a_hint(tmp_path):
    path = tmp_path / "nvidia.tlt"
    path.write_bytes(b"PK\x03\x04 some other encrypted container")
    with pytest.raises(DataError, match=r"not a readable HDF5 model file .*NVIDIA TAO use another"):
        load_model_file(path, key=KEY)

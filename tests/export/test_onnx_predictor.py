"""OnnxPredictor: KerasPredictor's interface (NHWC in, NHWC numpy out) on ONNX Runtime CPU."""

import numpy as np
import onnx
import pytest
from onnx_export_testing import max_scales, real_images, relative_error

from tao_qat.common.errors import DataError, UsageError
from tao_qat.export.qdq import insert_qdq
from tao_qat.inference.onnx_predictor import OnnxPredictor, cpu_count
from tao_qat.inference.predictor import KerasPredictor


def test_matches_the_keras_predictor_on_real_images(resnet10):
    keras_model, export = resnet10
    predictor = OnnxPredictor(export.path)
    reference = KerasPredictor(keras_model)
    assert predictor.input_shape == reference.input_shape == (64, 96, 3)
    assert predictor.batch_size is None
    images = real_images(64, 96)
    cov, bbox = predictor(images)
    cov_k, bbox_k = reference(images)
    # NHWC outputs: grid 4 x 6, 2 classes -> cov [4, 4, 6, 2], bbox [4, 4, 6, 8].
    assert cov.shape == (4, 4, 6, 2) and bbox.shape == (4, 4, 6, 8)
    assert cov.dtype == bbox.dtype == np.float32
    assert relative_error(cov, cov_k) < 1e-4 and relative_error(bbox, bbox_k) < 1e-4


def test_dynamic_batch_takes_any_batch_size(resnet10):
    _, export = resnet10
    predictor = OnnxPredictor(export.path)
    images = real_images(64, 96)
    cov_all, bbox_all = predictor(images)
    for start, stop in ((0, 1), (1, 4)):
        cov, bbox = predictor(images[start:stop])
        np.testing.assert_allclose(cov, cov_all[start:stop], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bbox, bbox_all[start:stop], rtol=1e-5, atol=1e-5)


def test_static_batch_model_runs_any_count_in_padded_chunks(resnet10, resnet10_static2):
    _, export = resnet10
    predictor = OnnxPredictor(resnet10_static2.path)
    assert predictor.batch_size == 2
    images = real_images(64, 96)[:3]  # chunks [0, 1] and [2, zero pad]
    cov, bbox = predictor(images)
    cov_d, bbox_d = OnnxPredictor(export.path)(images)
    assert cov.shape == (3, 4, 6, 2)
    np.testing.assert_allclose(cov, cov_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bbox, bbox_d, rtol=1e-5, atol=1e-5)


def test_runs_qdq_models(resnet10, tmp_path):
    keras_model, export = resnet10
    images = real_images(64, 96)
    activations, weights = max_scales(keras_model, images)
    qdq = insert_qdq(onnx.load(export.path), activations, weights, export.names)
    onnx.save(qdq, tmp_path / "qdq.onnx")
    cov, bbox = OnnxPredictor(tmp_path / "qdq.onnx", num_threads=1)(images)
    cov_f, _ = OnnxPredictor(export.path)(images)
    assert cov.shape == (4, 4, 6, 2) and bbox.shape == (4, 4, 6, 8)
    assert 0 < np.abs(cov - cov_f).max() < 0.02


def test_uses_every_available_core_by_default(resnet10):
    _, export = resnet10
    predictor = OnnxPredictor(export.path)
    assert predictor.session.get_session_options().intra_op_num_threads == cpu_count() >= 1


def test_wrong_image_shape_is_a_usage_error(resnet10):
    _, export = resnet10
    predictor = OnnxPredictor(export.path)
    with pytest.raises(UsageError, match=r"images shape \(1, 3, 64, 96\): the model takes"):
        predictor(np.zeros((1, 3, 64, 96), np.float32))  # NCHW by mistake


def test_missing_or_corrupt_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="nope.onnx: ONNX model not found"):
        OnnxPredictor(tmp_path / "nope.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(DataError, match="bad.onnx: not a loadable ONNX model") as err:
        OnnxPredictor(tmp_path / "bad.onnx")
    assert "\n" not in str(err.value)

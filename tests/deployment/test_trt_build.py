"""build_engine: input checks that run without TensorRT, and real builds (marked ``tensorrt``
and ``gpu``: skipped here, run on a machine with TensorRT and an NVIDIA GPU)."""

import logging

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from trt_testing import CHW, COV_TENSOR, images, tiny_model, write_tiny_model

from tao_qat.common.crypto import encrypt_file
from tao_qat.common.errors import DataError, MissingDependencyError, OutputExistsError, UsageError
from tao_qat.common.optional import TENSORRT_MISSING, tensorrt_missing_reason
from tao_qat.export.calibration_cache import (
    read_calibration_cache,
    trt_version_header,
    write_calibration_cache,
)
from tao_qat.export.tensorrt_engine import build_engine

without_tensorrt = pytest.mark.skipif(
    tensorrt_missing_reason() is None, reason="TensorRT is installed here"
)
on_gpu = [pytest.mark.tensorrt, pytest.mark.gpu]


def test_input_checks_need_no_tensorrt(tiny_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(UsageError, match="-t/--data_type 'int4'"):
        build_engine(tiny_onnx, engine, data_type="int4")
    with pytest.raises(UsageError, match="qdq requested but the model has no Q/DQ nodes"):
        build_engine(tiny_onnx, engine, data_type="int8", qdq=True)
    with pytest.raises(UsageError, match="-t int8: needs -c/--cal_cache_file"):
        build_engine(tiny_onnx, engine, data_type="int8", cal_cache_file=tmp_path / "none.bin")
    with pytest.raises(UsageError, match="need 1 <= min <= opt <= max"):
        build_engine(tiny_onnx, engine, min_batch=2, opt_batch=1, max_batch=4)
    with pytest.raises(DataError, match="missing.onnx: file not found"):
        build_engine(tmp_path / "missing.onnx", engine)
    engine.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        build_engine(tiny_onnx, engine)
    assert engine.read_bytes() == b"old"


@without_tensorrt
def test_valid_requests_stop_at_the_missing_tensorrt(
    tiny_onnx, tiny_qdq_onnx, make_cache, tmp_path
):
    engine = tmp_path / "m.engine"
    requests = [
        (tiny_onnx, {"data_type": "int8", "cal_cache_file": make_cache()}),
        (tiny_onnx, {"data_type": "int8", "calibration_batches": [np.zeros((2, *CHW))]}),
        (tiny_qdq_onnx, {"data_type": "int8"}),  # Q/DQ detected from the nodes
        (tiny_onnx, {"data_type": "fp16", "use_dla": True, "max_batch": 4}),
    ]
    for onnx_path, kwargs in requests:
        with pytest.raises(MissingDependencyError) as info:
            build_engine(onnx_path, engine, **kwargs)
        assert str(info.value) == TENSORRT_MISSING
    assert not engine.exists()


@without_tensorrt
def test_encrypted_onnx_is_decrypted_first(tiny_onnx, tmp_path):
    encrypted = encrypt_file(tiny_onnx, tmp_path / "model.onnx.enc", key="tlt_encode")
    with pytest.raises(UsageError, match="is encrypted; give -k/--key"):
        build_engine(encrypted, tmp_path / "m.engine")
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        build_engine(encrypted, tmp_path / "m.engine", key="tlt_encode")


# ---- real builds: TensorRT + NVIDIA GPU ------------------------------------------------------


def _trt_major():
    import tensorrt as trt

    return int(trt.__version__.split(".")[0])


def _onnx_outputs(model, nhwc):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    cov, bbox = session.run(None, {"input_1": np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})
    return cov.transpose(0, 2, 3, 1), bbox.transpose(0, 2, 3, 1)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_fp32_engine_matches_onnxruntime(tiny_onnx, tmp_path):
    from tao_qat.inference.tensorrt_predictor import TensorRTPredictor

    result = build_engine(tiny_onnx, tmp_path / "m.engine", opt_batch=2, max_batch=4)
    assert result.path.stat().st_size > 0 and result.shapes[2] == (4, *CHW)
    predictor = TensorRTPredictor(result.path)
    assert predictor.input_shape == (32, 48, 3) and predictor.batch_size is None
    batch = images(5)  # 5 images, max batch 4: chunks of 4 and 1
    cov, bbox = predictor(batch)
    want_cov, want_bbox = _onnx_outputs(tiny_model(), batch)
    assert cov.shape == (5, 2, 3, 2) and bbox.shape == (5, 2, 3, 8)
    np.testing.assert_allclose(cov, want_cov, atol=2e-3)  # TF32 convs on Ampere and newer
    np.testing.assert_allclose(bbox, want_bbox, atol=2e-3 * np.abs(want_bbox).max())


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_static_batch_engine_pads(tmp_path):
    from tao_qat.inference.tensorrt_predictor import TensorRTPredictor

    onnx_path = write_tiny_model(tmp_path / "b2.onnx", batch=2)
    result = build_engine(onnx_path, tmp_path / "b2.engine", data_type="fp16")
    assert result.shapes is None  # static batch: no profile
    predictor = TensorRTPredictor(result.path)
    assert predictor.batch_size == 2
    cov, _ = predictor(images(3))
    want_cov, _ = _onnx_outputs(tiny_model(), images(3))
    np.testing.assert_allclose(cov, want_cov, atol=1e-2)  # FP16


def _amax_cache(path, version, batch):
    """A cache with the max-calibrated amax of every tiny-model tensor (ONNX Runtime)."""
    model = tiny_model()
    model.graph.output.append(helper.make_tensor_value_info(COV_TENSOR, TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _, bbox, cov_logits = session.run(None, {"input_1": batch.transpose(0, 3, 1, 2).copy()})
    amax = {
        "input_1": 1.0,
        COV_TENSOR: float(np.abs(cov_logits).max()),
        "output_cov/Sigmoid": 1.0,
        "output_bbox/BiasAdd": float(np.abs(bbox).max()),
    }
    return write_calibration_cache(path, amax, trt_version=version)


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("strict", [False, True])
def test_int8_engine_from_cache(tiny_onnx, tmp_path, strict):
    import tensorrt as trt

    from tao_qat.inference.tensorrt_predictor import TensorRTPredictor

    if _trt_major() >= 11:
        pytest.skip("TensorRT 11 has no implicit INT8 (covered by the Q/DQ test)")
    batch = images(8)
    cache = _amax_cache(tmp_path / "cal.bin", trt.__version__, batch)
    result = build_engine(
        tiny_onnx,
        tmp_path / "i8.engine",
        data_type="int8",
        cal_cache_file=cache,
        max_batch=8,
        opt_batch=8,
        strict_types=strict,
    )
    assert result.plan.path == "int8-cache"
    assert set(result.coverage.covered) >= {"input_1", "output_bbox/BiasAdd"}
    cov, bbox = TensorRTPredictor(result.path)(batch)
    want_cov, want_bbox = _onnx_outputs(tiny_model(), batch)
    assert np.abs(cov - want_cov).max() < 0.05
    assert np.abs(bbox - want_bbox).max() < 0.05 * np.abs(want_bbox).max()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_cache_for_another_version_is_still_used(tiny_onnx, tmp_path, caplog):
    if _trt_major() >= 11:
        pytest.skip("TensorRT 11 has no implicit INT8")
    cache = _amax_cache(tmp_path / "cal.bin", "7.0.0", images(4))  # TLT 2.0's TRT-7000 header
    with caplog.at_level(logging.WARNING):
        result = build_engine(
            tiny_onnx, tmp_path / "m.engine", data_type="int8", cal_cache_file=cache
        )
    assert result.path.exists() and "was written for another TensorRT" in caplog.text
    assert cache.read_text().startswith("TRT-7000-")  # the file is not changed


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_calibration_writes_the_cache(tiny_onnx, tmp_path):
    import tensorrt as trt

    if _trt_major() >= 11:
        pytest.skip("TensorRT 11 has no calibrator")
    cache = tmp_path / "cal.bin"
    batches = [images(4, seed=s).transpose(0, 3, 1, 2) for s in range(3)]
    build_engine(
        tiny_onnx,
        tmp_path / "m.engine",
        data_type="int8",
        cal_cache_file=cache,
        calibration_batches=batches,
        opt_batch=4,
        max_batch=4,
    )
    assert cache.read_text().splitlines()[0] == trt_version_header(trt.__version__)
    _, amax = read_calibration_cache(cache)
    assert 0.9 < amax["input_1"] <= 1.0 + 1e-6  # inputs in [0, 1]


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_qdq_engine_matches_onnxruntime(tiny_qdq_onnx, tmp_path):
    from tao_qat.inference.tensorrt_predictor import TensorRTPredictor

    result = build_engine(tiny_qdq_onnx, tmp_path / "q.engine", data_type="int8", max_batch=4)
    assert result.plan.path == "int8-qdq" and result.plan.calibration is None
    batch = images(4)
    cov, bbox = TensorRTPredictor(result.path)(batch)
    want_cov, want_bbox = _onnx_outputs(tiny_model(qdq=True), batch)
    np.testing.assert_allclose(cov, want_cov, atol=0.02)
    np.testing.assert_allclose(bbox, want_bbox, atol=0.02 * np.abs(want_bbox).max())


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_dla_fp16_engine(tiny_onnx, tmp_path):
    import tensorrt as trt

    if trt.Builder(trt.Logger()).num_DLA_cores == 0:
        pytest.skip("no DLA on this GPU (Jetson AGX Xavier / Orin have DLA)")
    result = build_engine(
        tiny_onnx, tmp_path / "dla.engine", data_type="fp16", use_dla=True, max_batch=2
    )
    assert result.shapes == ((2, *CHW),) * 3 and result.plan.device == "DLA"

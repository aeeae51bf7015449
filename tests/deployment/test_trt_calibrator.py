"""Calibration feed, cache header retargeting and cache coverage, without TensorRT."""

import logging

import numpy as np
import pytest
from trt_testing import CACHE_LINES

from tao_qat.common.errors import DataError, UsageError
from tao_qat.export.calibration_cache import read_calibration_cache
from tao_qat.export.tensorrt_calibrator import (
    CalibrationFeed,
    cache_bytes_for_version,
    cache_coverage,
    load_cache_for_build,
    retarget_cache,
)

CHW = (3, 4, 5)


def _batches(*sizes):
    return [np.full((n, *CHW), float(i), np.float64) for i, n in enumerate(sizes)]


def test_feed_serves_fixed_size_float32_batches(caplog):
    feed = CalibrationFeed(_batches(2, 2, 1), CHW)
    assert feed.batch_size == 2  # from the first batch
    first, second = feed.next_batch(), feed.next_batch()
    assert first.dtype == np.float32 and first.flags["C_CONTIGUOUS"]
    assert first.shape == (2, 3, 4, 5) and float(first[0, 0, 0, 0]) == 0.0
    assert float(second[0, 0, 0, 0]) == 1.0
    with caplog.at_level(logging.WARNING):
        assert feed.next_batch() is None  # the short last batch is dropped, then exhausted
    assert "dropping a batch of 1 images (batch size 2)" in caplog.text
    assert feed.batches_served == 2


def test_feed_rejects_wrong_layout_and_empty_data():
    with pytest.raises(DataError, match=r"shape \(2, 4, 5, 3\): the model takes \[B, 3, 4, 5\]"):
        CalibrationFeed([np.zeros((2, 4, 5, 3), np.float32)], CHW)  # NHWC by mistake
    with pytest.raises(DataError, match="no batches"):
        CalibrationFeed(iter(()), CHW)


def test_cache_only_feed(tmp_path):
    feed = CalibrationFeed(
        None, CHW, cache_bytes=b"TRT-8601-EntropyCalibration2\n", default_batch=8
    )
    assert feed.batch_size == 8 and feed.next_batch() is None
    assert feed.read_cache() == b"TRT-8601-EntropyCalibration2\n"
    feed.write_cache(b"ignored")  # no cache_path: nothing written
    target = tmp_path / "written.bin"
    CalibrationFeed(None, CHW, cache_path=target).write_cache(memoryview(b"TRT-8601-X\n"))
    assert target.read_bytes() == b"TRT-8601-X\n"


def test_cache_bytes_follow_the_building_tensorrt(make_cache, caplog):
    cache = load_cache_for_build(make_cache("TRT-8601-EntropyCalibration2"))
    assert cache.algorithm == "EntropyCalibration2" and cache.version_number == 8601
    assert cache.amax["conv_cov/BiasAdd:0"] == pytest.approx(6.0, rel=1e-6)
    assert cache_bytes_for_version(cache, "8.6.1") == cache.text.encode()
    with caplog.at_level(logging.WARNING):
        adapted = cache_bytes_for_version(cache, "10.3.0.26")
    # 10.3.0 -> (10*100 + 3)*100 + 0 = 100300 (the DeepStream 9.1 TrafficCamNet header)
    assert adapted == f"TRT-100300-EntropyCalibration2\n{CACHE_LINES}".encode()
    assert "qat convert --trt_version 10.3.0.26" in caplog.text


def test_unknown_calibrator_tag(make_cache):
    with pytest.raises(DataError, match=r"cal.bin:1: calibrator 'LegacyCalibration' is not one"):
        load_cache_for_build(make_cache("TRT-8601-LegacyCalibration"))


def test_retarget_cache_for_jetson(make_cache):
    path = make_cache("TRT-7000-EntropyCalibration2")
    # TLT 2.0 wrote 7000; JetPack 4.4's TensorRT 7.1.3 reads 7103 (7*1000 + 1*100 + 3)
    assert retarget_cache(path, "7.1.3") == (
        "TRT-7000-EntropyCalibration2",
        "TRT-7103-EntropyCalibration2",
    )
    assert path.read_bytes() == f"TRT-7103-EntropyCalibration2\n{CACHE_LINES}".encode()
    assert retarget_cache(path, "10.3.0")[1] == "TRT-100300-EntropyCalibration2"
    assert read_calibration_cache(path)[0] == 100300
    before = path.stat().st_mtime_ns
    assert retarget_cache(path, "10.3") == ("TRT-100300-EntropyCalibration2",) * 2
    assert path.stat().st_mtime_ns == before  # unchanged header: file untouched


def test_retarget_cache_refusals(make_cache, tmp_path):
    path = make_cache("TRT-8601-EntropyCalibration2")
    with pytest.raises(UsageError, match="TensorRT 11 removed implicit quantization"):
        retarget_cache(path, "11.4.0")
    with pytest.raises(UsageError, match="rewrites a calibration cache, not a model"):
        retarget_cache(tmp_path / "model.onnx", "8.6.1")
    with pytest.raises(DataError, match="calibration cache not found"):
        retarget_cache(tmp_path / "missing.bin", "8.6.1")
    broken = tmp_path / "broken.bin"
    broken.write_text("TRT-7000-EntropyCalibration2\ninput_1 3c010204\n")
    with pytest.raises(DataError, match="broken.bin:2"):
        retarget_cache(broken, "8.6.1")
    assert broken.read_text().startswith("TRT-7000")  # a corrupt cache is never rewritten


def test_cache_coverage():
    network = ["input_1", "conv1/BiasAdd:0", "relu1:0", "conv1/BiasAdd:0", "output_cov/Sigmoid"]
    coverage = cache_coverage(["relu1:0", "input_1", "Reshape__12:0"], network)
    assert coverage.covered == ("input_1", "relu1:0")  # network order, duplicates once
    assert coverage.missing == ("conv1/BiasAdd:0", "output_cov/Sigmoid")
    assert coverage.extra == ("Reshape__12:0",)  # stale tf2onnx names TensorRT never sees

"""TensorRT tests: tiny ONNX models, calibration caches, the ``qat convert`` runner, and the
hook that skips ``tensorrt`` / ``gpu`` tests with the one-line reason when they cannot run."""

import pytest
from trt_testing import CACHE_LINES, write_tiny_model

from tao_qat.common.optional import gpu_missing_reason, tensorrt_missing_reason


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``tensorrt`` / ``gpu`` with the reason the library or GPU is missing."""
    reasons = {}
    for item in items:
        for marker, probe in (("tensorrt", tensorrt_missing_reason), ("gpu", gpu_missing_reason)):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                reasons[marker] = probe()
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: {reasons[marker]}"))
                break


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """Float tiny model, dynamic batch: path."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model.onnx")


@pytest.fixture(scope="session")
def tiny_qdq_onnx(tmp_path_factory):
    """Explicitly quantized tiny model (Q/DQ), dynamic batch: path."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny_qdq") / "model_qdq.onnx", qdq=True)


@pytest.fixture
def make_cache(tmp_path):
    """Factory: header -> path of a cache with CACHE_LINES under that header."""

    def make(header="TRT-7000-EntropyCalibration2", name="cal.bin"):
        path = tmp_path / name
        path.write_bytes(f"{header}\n{CACHE_LINES}".encode("ascii"))
        return path

    return make


@pytest.fixture
def qat(run_qat, monkeypatch):
    """run_qat with ``convert`` registered (a no-op once cli.main lists it)."""
    from tao_qat.cli import main

    monkeypatch.setitem(main.COMMANDS, "convert", "tao_qat.cli.convert:convert")
    return run_qat

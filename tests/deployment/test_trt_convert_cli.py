"""``qat convert``: cache header retargeting (works without TensorRT), the dry-run plan, and
the one-line failure when TensorRT is missing."""

import pytest
from trt_testing import CACHE_LINES

from tao_qat.cli.convert import parse_size
from tao_qat.common.optional import TENSORRT_MISSING, tensorrt_missing_reason

without_tensorrt = pytest.mark.skipif(
    tensorrt_missing_reason() is None, reason="TensorRT is installed here"
)


def test_retarget_header_for_the_target(qat, make_cache):
    path = make_cache("TRT-7000-EntropyCalibration2")
    code, out, err = qat("convert", "--trt_version", "8.6.1", path)
    assert (code, err) == (0, "")
    assert out == f"{path}: TRT-7000-EntropyCalibration2 -> TRT-8601-EntropyCalibration2\n"
    assert path.read_bytes() == f"TRT-8601-EntropyCalibration2\n{CACHE_LINES}".encode()
    # JetPack 6 (TensorRT 10.3): the 10.x formula, not tao-deploy's 10300
    code, out, _ = qat("convert", "--trt_version", "10.3.0", "-c", path, path)
    assert code == 0 and out.endswith("-> TRT-100300-EntropyCalibration2\n")
    code, out, _ = qat("convert", "--trt_version", "10.3.0", path)
    assert out == f"{path}: already TRT-100300-EntropyCalibration2\n"


def test_retarget_refusals(qat, make_cache, tiny_onnx):
    code, _, err = qat("convert", "--trt_version", "11.4.0", make_cache())
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("qat convert: error: --trt_version 11.4.0: TensorRT 11 removed")
    code, _, err = qat("convert", "--trt_version", "8.6.1", tiny_onnx)
    assert code == 2 and "rewrites a calibration cache, not a model" in err
    code, _, err = qat("convert", tiny_onnx)
    assert code == 2 and err.startswith("qat convert: error: -e/--engine_file: required")


@without_tensorrt
def test_build_without_tensorrt_is_one_line(qat, tiny_onnx, make_cache, tmp_path):
    engine = tmp_path / "model.engine"
    code, out, err = qat("convert", tiny_onnx, "-e", engine, "-t", "int8", "-c", make_cache())
    assert (code, out) == (1, "")
    assert err == f"qat convert: error: {TENSORRT_MISSING}\n"
    assert not engine.exists()
    code, _, err = qat("convert", tiny_onnx, "-e", engine, "-t", "fp16", "--use_dla")
    assert err == f"qat convert: error: {TENSORRT_MISSING}\n"


def test_flag_errors_come_before_tensorrt(qat, tiny_onnx, tiny_qdq_onnx, tmp_path):
    engine = tmp_path / "model.engine"
    code, _, err = qat("convert", tiny_onnx, "-e", engine, "-t", "int8")
    assert code == 2 and "-t int8: needs -c/--cal_cache_file" in err
    code, _, err = qat("convert", tiny_onnx, "-e", engine, "-w", "lots")
    assert code == 2 and "-w" in err and "expected bytes" in err
    code, _, err = qat("convert", tiny_onnx, "-e", engine, "-w", "512K")
    assert code == 2 and "-w/--max_workspace_size 524288: need at least 1 MiB" in err
    engine.write_bytes(b"old")
    code, _, err = qat("convert", tiny_onnx, "-e", engine)
    assert code == 2 and "already exists (use --force to overwrite)" in err
    assert engine.read_bytes() == b"old"


def test_dry_run_prints_the_plan(qat, tiny_onnx, make_cache):
    code, out, err = qat(
        "convert",
        tiny_onnx,
        "-e",
        "x.engine",
        "-t",
        "int8",
        "-c",
        make_cache(),
        "--trt_version",
        "10.3.0",
        "--dry_run",
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "TensorRT 10.3, -t int8: int8-cache (implicit INT8, scales from the calibration cache)",
        "  network flags: none",
        "  builder flags: INT8, FP16",
        "  device: GPU",
        "  INT8 scales: cache (IInt8EntropyCalibrator2)",
        "  note: implicit INT8 is deprecated since TensorRT 10.1 and gone in 11",
        "  profile input_1: min 1x3x32x48, opt 8x3x32x48, max 16x3x32x48",
    ]


def test_dry_run_qdq_dla_and_profiles(qat, tiny_onnx, tiny_qdq_onnx):
    code, out, _ = qat("convert", tiny_qdq_onnx, "-t", "int8", "--trt_version", "11.4", "--dry_run")
    assert code == 0
    assert "int8-qdq (explicit INT8 from the Q/DQ nodes of the ONNX)" in out
    assert "  builder flags: none\n" in out
    # -u implies --use_dla; DLA builds a static profile at the max batch
    code, out, _ = qat(
        "convert",
        tiny_onnx,
        "-t",
        "fp16",
        "-u",
        "1",
        "-m",
        "4",
        "--trt_version",
        "8.6.1",
        "--dry_run",
    )
    assert code == 0
    assert "  network flags: EXPLICIT_BATCH\n  builder flags: FP16, GPU_FALLBACK\n" in out
    assert "  device: DLA core 1 + GPU fallback\n" in out
    assert "profile input_1: min 4x3x32x48, opt 4x3x32x48, max 4x3x32x48" in out
    code, out, _ = qat(
        "convert",
        tiny_onnx,
        "-p",
        "input_1,2x3x32x48,4x3x32x48,8x3x32x48",
        "--trt_version",
        "10.3",
        "--dry_run",
    )
    assert "profile input_1: min 2x3x32x48, opt 4x3x32x48, max 8x3x32x48" in out
    code, _, err = qat(
        "convert", tiny_onnx, "-t", "int8", "-c", "cal.bin", "--trt_version", "11.4", "--dry_run"
    )
    assert code == 2 and "needs -c/--cal_cache_file" in err  # cal.bin does not exist
    code, _, err = qat("convert", tiny_qdq_onnx, "-t", "fp16", "--trt_version", "10.3", "--dry_run")
    assert code == 2 and "has Q/DQ nodes (explicit INT8); use -t int8" in err


@without_tensorrt
def test_dry_run_needs_a_version_without_tensorrt(qat, tiny_onnx):
    code, _, err = qat("convert", tiny_onnx, "--dry_run")
    assert code == 2 and "name it with --trt_version" in err


def test_parse_size():
    assert parse_size("2147483648") == 2 << 30
    assert parse_size("2G") == parse_size("2GiB") == 2 << 30
    assert parse_size("512m") == 512 << 20
    with pytest.raises(ValueError, match="expected bytes"):
        parse_size("2T")

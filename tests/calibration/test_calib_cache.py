"""TensorRT calibration cache and --cal_json_file (int8_calibration.md §2, TAO §6)."""

import logging
import struct

import numpy as np
import pytest

from tao_qat.common.errors import DataError, OutputExistsError, UsageError
from tao_qat.export.calibration_cache import (
    DEFAULT_TRT_VERSION,
    amax_to_hex,
    default_trt_version,
    format_calibration_cache,
    hex_to_amax,
    installed_trt_version,
    read_cal_json,
    read_calibration_cache,
    rewrite_cache_version,
    trt_version_header,
    trt_version_number,
    write_cal_json,
    write_calibration_cache,
)


def test_known_encodings():
    # 6 / 127 = 0.047244094 -> float32 bits 0x3d418306; 1 / 127 -> 0x3c010204 (TAO §6)
    assert amax_to_hex(6.0) == "3d418306"
    assert amax_to_hex(1.0) == "3c010204"
    assert amax_to_hex(0.0) == "0"  # TensorRT writes a zero scale as "0" (§2.1)
    assert amax_to_hex(np.float32(6.0)) == "3d418306"


@pytest.mark.parametrize(
    ("hex_value", "amax"),
    [  # real cache lines (int8_calibration.md §2.2, which rounds to 3-4 digits), amax = 127 * s
        ("3c008912", 0.99634),  # sampleINT8 data (input in [0, 1])
        ("3c88edfc", 2.12281),  # conv1
        ("3ddc858b", 13.67493),  # conv2
        ("3e691968", 28.90977),  # ip2
        ("3c010a14", 1.00024),  # prob / TrafficCamNet input_1:0
        ("3d0b7086", 4.32344),  # conv1/convolution:0
        ("3da418a9", 10.17590),  # output_bbox/BiasAdd:0
    ],
)
def test_real_cache_values_decode(hex_value, amax):
    assert hex_to_amax(hex_value) == pytest.approx(amax, abs=1e-5)


def test_hex_round_trip_is_float32_exact():
    rng = np.random.default_rng(0)
    for amax in rng.uniform(1e-3, 100.0, 200).astype(np.float32):
        text = amax_to_hex(amax)
        decoded = hex_to_amax(text)
        # the decoded scale is the exact float32 that was written ...
        (bits,) = struct.unpack(">I", struct.pack(">f", decoded / 127.0))
        assert format(bits, "x") == text
        assert amax_to_hex(decoded) == text
        # ... and amax comes back within float32 rounding of the division
        assert decoded == pytest.approx(float(amax), rel=2**-23)


def test_short_hex_is_left_padded():
    assert hex_to_amax("0") == 0.0
    assert hex_to_amax("1") == struct.unpack(">f", bytes.fromhex("00000001"))[0] * 127.0
    with pytest.raises(ValueError, match="not a float32 hex"):
        hex_to_amax("0x3c01")


@pytest.mark.parametrize(
    ("version", "number"),
    [
        ("7.0.0", 7000),
        ("7.1.3", 7103),
        ("8.5.3", 8503),  # TAO 5 container (TAO §6 example)
        ("8.6.1", 8601),
        ("8.6", 8600),
        ("10.3.0", 100300),  # DeepStream TrafficCamNet cal_trt.bin header
        ("10.16.2", 101602),
        ("11.4.0.106", 110400),  # build number ignored
    ],
)
def test_version_numbers(version, number):
    assert trt_version_number(version) == number
    assert trt_version_header(version) == f"TRT-{number}-EntropyCalibration2"


def test_bad_versions():
    for bad in ("eight", "8", "8.10.1", "10.100.0"):
        with pytest.raises(UsageError, match="TensorRT version"):
            trt_version_number(bad)


def test_write_then_read_cache(tmp_path):
    scales = {
        "input_1:0": 1.0,
        "block_1a_relu/Relu:0": 6.0,
        "(Unnamed Layer* 64) [Shuffle]_output": 0,
    }
    path = write_calibration_cache(tmp_path / "cal.bin", scales, trt_version="8.5.3")
    assert path.read_text() == (
        "TRT-8503-EntropyCalibration2\n"
        "input_1:0: 3c010204\n"
        "block_1a_relu/Relu:0: 3d418306\n"
        "(Unnamed Layer* 64) [Shuffle]_output: 0\n"
    )
    version, amax = read_calibration_cache(path)
    assert version == 8503
    assert list(amax) == list(scales)  # names with ':' and spaces split on the last ": "
    assert amax["block_1a_relu/Relu:0"] == pytest.approx(6.0, rel=1e-7)
    assert amax["(Unnamed Layer* 64) [Shuffle]_output"] == 0.0


def test_cache_refuses_to_overwrite_without_force(tmp_path):
    path = write_calibration_cache(tmp_path / "cal.bin", {"a": 1.0}, "8.6.1")
    with pytest.raises(OutputExistsError, match="cal.bin"):
        write_calibration_cache(path, {"a": 2.0}, "8.6.1")
    write_calibration_cache(path, {"a": 2.0}, "8.6.1", force=True)
    assert read_calibration_cache(path)[1]["a"] == pytest.approx(2.0, rel=1e-7)
    assert [p.name for p in tmp_path.iterdir()] == ["cal.bin"]  # no temp files left


def test_invalid_amax_or_name_is_refused():
    with pytest.raises(ValueError, match="bad: amax"):
        format_calibration_cache({"bad": float("nan")}, "8.6.1")
    with pytest.raises(ValueError, match="neg: amax"):
        format_calibration_cache({"neg": -1.0}, "8.6.1")
    with pytest.raises(ValueError, match="tensor name"):
        format_calibration_cache({"a\nb": 1.0}, "8.6.1")


def test_tensorrt_11_cache_warns(caplog):
    with caplog.at_level(logging.WARNING):
        text = format_calibration_cache({"a": 1.0}, "11.4.0")
    assert text.startswith("TRT-110400-EntropyCalibration2\n")
    assert "ignores calibration caches" in caplog.text


def test_read_errors_name_file_and_line(tmp_path):
    bad_header = tmp_path / "h.bin"
    bad_header.write_text("1\na: 3c010204\n")
    with pytest.raises(DataError, match=r"h\.bin:1: not a TensorRT calibration cache header"):
        read_calibration_cache(bad_header)
    bad_line = tmp_path / "l.bin"
    bad_line.write_text("TRT-8601-EntropyCalibration2\na: 3c010204\nb 3c010204\n")
    with pytest.raises(DataError, match=r"l\.bin:3: expected"):
        read_calibration_cache(bad_line)
    bad_hex = tmp_path / "x.bin"
    bad_hex.write_text("TRT-8601-EntropyCalibration2\n\na: zz\n")
    with pytest.raises(DataError, match=r"x\.bin:3: not a float32 hex"):
        read_calibration_cache(bad_hex)


def test_rewrite_version_keeps_tensor_lines(tmp_path):
    path = tmp_path / "cal.bin"
    body = "input_1:0: 3c010204\nconv1/convolution:0: 3d0b7086\n"
    path.write_text("TRT-7000-EntropyCalibration2\n" + body)
    assert rewrite_cache_version(path, "7.1.0") == "TRT-7100-EntropyCalibration2"
    assert path.read_text() == "TRT-7100-EntropyCalibration2\n" + body
    rewrite_cache_version(path, "10.3.0")
    assert read_calibration_cache(path)[0] == 100300


def test_default_version_without_and_with_a_tensorrt_distribution(tmp_path, monkeypatch):
    if installed_trt_version() is None:
        assert default_trt_version() == DEFAULT_TRT_VERSION == "8.6.1"
        assert format_calibration_cache({}).startswith("TRT-8601-")
    # a real (metadata-only) distribution on sys.path is what importlib.metadata finds
    dist = tmp_path / "tensorrt-10.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorrt\nVersion: 10.3.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_trt_version() == "10.3.0"
    assert format_calibration_cache({"a": 1.0}) == "TRT-100300-EntropyCalibration2\na: 3c010204\n"


def test_cal_json_format_and_round_trip(tmp_path):
    path = write_cal_json(tmp_path / "cal.json", {"input_1:0": 1.0, "add_1:0": np.float32(6.5)})
    assert path.read_text() == (
        '{\n    "tensor_scales": {\n        "input_1:0": 1.0,\n        "add_1:0": 6.5\n    }\n}\n'
    )
    assert read_cal_json(path) == {"input_1:0": 1.0, "add_1:0": 6.5}
    with pytest.raises(OutputExistsError):
        write_cal_json(path, {"a": 1.0})


def test_cal_json_errors(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"scales": {}}')
    with pytest.raises(DataError, match="tensor_scales"):
        read_cal_json(path)
    path.write_text('{"tensor_scales": {"a": "x"}}')
    with pytest.raises(DataError, match=r"tensor_scales\['a'\]"):
        read_cal_json(path)
    path.write_text("{\n  oops")
    with pytest.raises(DataError, match=r"bad\.json:2: invalid JSON"):
        read_cal_json(path)

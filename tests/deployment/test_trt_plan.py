"""Build plans without TensorRT: which path and which flags each TensorRT version implies,
checked over every combination of version x precision x Q/DQ x DLA x cache x strict."""

import itertools

import pytest
from trt_testing import tiny_model

from tao_qat.common.errors import DataError, UsageError
from tao_qat.export.tensorrt_plan import (
    DATA_TYPES,
    OnnxInput,
    int8_paths,
    parse_profile_spec,
    parse_trt_version,
    plan_build,
    profile_shapes,
    read_onnx_info,
)

VERSIONS = ["8.6.1", "10.0.1", "10.3.0", "10.13.2", "11.0.0", "11.3.0", "11.4.0.106", "12.0"]
# Enum members that exist in each TensorRT major (TensorRT Python API docs 8.6 / 10.x / 11.x):
# 11 removed FP16, INT8 and the precision-constraint flags, and EXPLICIT_BATCH.
BUILDER_FLAGS = {
    8: {"FP16", "INT8", "GPU_FALLBACK", "PREFER_PRECISION_CONSTRAINTS"},
    10: {"FP16", "INT8", "GPU_FALLBACK", "PREFER_PRECISION_CONSTRAINTS"},
    11: {"GPU_FALLBACK"},
    12: {"GPU_FALLBACK"},
}
NETWORK_FLAGS = {8: {"EXPLICIT_BATCH"}, 10: {"STRONGLY_TYPED"}, 11: set(), 12: set()}


def test_parse_trt_version():
    assert parse_trt_version("10.3.0.26") == (10, 3, 0)
    assert parse_trt_version("8.6") == (8, 6, 0)
    assert parse_trt_version((11, 4)) == (11, 4, 0)
    for bad in ("ten", "10", ""):
        with pytest.raises(UsageError, match="--trt_version"):
            parse_trt_version(bad)


def test_int8_paths_by_version():
    assert int8_paths("8.6.1") == ("cache", "calibrate", "qdq")
    assert int8_paths((10, 16)) == ("cache", "calibrate", "qdq")
    assert int8_paths("11.0") == ("qdq",)


def _expected_error(version, data_type, qdq, dla):
    """The rule (message fragment) that must refuse this combination, or None."""
    major = version[0]
    if qdq and data_type != "int8":
        return "has Q/DQ nodes"
    if dla and data_type == "fp32":
        return "DLA runs FP16 or INT8 only"
    if major >= 11 and data_type == "int8" and not qdq:
        return "removed implicit quantization"
    if major >= 11 and dla and version < (11, 4):
        return "no DLA support"
    if major < 11 and dla and qdq:
        return "--force_ptq"
    return None


COMBOS = list(
    itertools.product(VERSIONS, DATA_TYPES, *[(False, True)] * 4)
)  # version, data_type, qdq, dla, has_cache, strict


@pytest.mark.parametrize(("version", "data_type", "qdq", "dla", "has_cache", "strict"), COMBOS)
def test_plan_every_combination(version, data_type, qdq, dla, has_cache, strict):
    v = parse_trt_version(version)[:2]
    major = v[0]
    error = _expected_error(v, data_type, qdq, dla)
    if error:
        with pytest.raises(UsageError, match=error) as info:
            plan_build(version, data_type, qdq, dla, has_cache, strict_types=strict, dla_core=1)
        assert "\n" not in str(info.value)
        assert str(info.value).startswith(("-t", "--use_dla"))  # names the flag
        return
    plan = plan_build(version, data_type, qdq, dla, has_cache, strict_types=strict, dla_core=1)
    strongly_typed = major >= 11 or (major == 10 and qdq)
    assert plan.version == v and plan.data_type == data_type
    assert plan.strongly_typed == strongly_typed
    if data_type == "int8":
        expected_path = "int8-qdq" if qdq else ("int8-cache" if has_cache else "int8-calibrate")
    else:
        expected_path = "typed" if major >= 11 else data_type
    assert plan.path == expected_path
    # network flags: explicit batch on 8.x, strong typing opted in on 10.x, nothing on 11+
    expected_network = {8: ("EXPLICIT_BATCH",), 10: ("STRONGLY_TYPED",) if qdq else ()}
    assert plan.network_flags == expected_network.get(major, ())
    assert set(plan.network_flags) <= NETWORK_FLAGS[major]
    assert set(plan.builder_flags) <= BUILDER_FLAGS[major]
    # builder flags
    flags = set(plan.builder_flags)
    assert ("GPU_FALLBACK" in flags) == dla
    if strongly_typed:
        assert flags <= {"GPU_FALLBACK"}
    else:
        assert ("INT8" in flags) == (data_type == "int8")
        assert ("FP16" in flags) == (data_type == "fp16" or (data_type == "int8" and not strict))
        assert ("PREFER_PRECISION_CONSTRAINTS" in flags) == (strict and data_type != "fp32")
    assert len(plan.builder_flags) == len(flags)
    # scales, pinning, device
    assert plan.calibration == {"int8-cache": "cache", "int8-calibrate": "batches"}.get(plan.path)
    if plan.calibration:
        assert major < 11
    expected_pin = None
    if strict and not strongly_typed:
        expected_pin = (
            "int8" if plan.path == "int8-cache" else "fp16" if data_type == "fp16" else None
        )
    assert plan.pin_precision == expected_pin
    assert (plan.device, plan.dla_core) == (("DLA", 1) if dla else ("GPU", None))
    # notes tell about ignored flags, deprecation and DLA rules
    notes = " | ".join(plan.notes)
    assert ("-c/--cal_cache_file: not used" in notes) == (has_cache and plan.path != "int8-cache")
    ignored = strict and (major >= 11 or (major == 10 and qdq) or data_type == "fp32")
    assert ("--strict_type_constraints: ignored" in notes) == ignored
    implicit = plan.path in ("int8-cache", "int8-calibrate")
    assert ("deprecated since TensorRT 10.1" in notes) == (implicit and v >= (10, 1))
    assert ("DLA core 1: static shapes" in notes) == dla
    assert ("newer than 11.x" in notes) == (major >= 12)
    assert all("\n" not in note for note in plan.notes)


def test_combination_counts():
    # 8 versions x 3 data types x 2^4 (qdq, dla, cache, strict) = 384 combinations.
    outcomes = {"ok": 0, "error": 0}
    for version, data_type, qdq, dla, has_cache, strict in COMBOS:
        try:
            plan_build(version, data_type, qdq, dla, has_cache, strict_types=strict)
            outcomes["ok"] += 1
        except UsageError:
            outcomes["error"] += 1
    # Per version and (cache, strict) pair (x4), the accepted (type, qdq, dla) triples:
    # 8.6 / 10.x: fp32, fp16, fp16+dla, int8, int8+dla, int8+qdq -> 6 -> 4 versions x 6 x 4 = 96
    # 11.0 / 11.3: fp32, fp16, int8+qdq -> 3 -> 2 x 3 x 4 = 24
    # 11.4 / 12.0: fp32, fp16, fp16+dla, int8+qdq, int8+qdq+dla -> 5 -> 2 x 5 x 4 = 40
    assert outcomes == {"ok": 160, "error": 384 - 160}


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (  # TAO's default DetectNet_v2 deployment on TensorRT 8.6: QAT cache, INT8 + FP16
            ("8.6.1", "int8", False, False, True),
            {},
            ("int8-cache", ("EXPLICIT_BATCH",), ("INT8", "FP16"), "cache", None, "GPU"),
        ),
        (  # Q/DQ ONNX on 10.x: strongly typed, no precision flags, no calibrator
            ("10.3.0", "int8", True, False, False),
            {},
            ("int8-qdq", ("STRONGLY_TYPED",), (), None, None, "GPU"),
        ),
        (  # Q/DQ ONNX on 8.6: weakly typed, needs the INT8 flag; strict drops FP16
            ("8.6.1", "int8", True, False, False),
            {"strict_types": True},
            (
                "int8-qdq",
                ("EXPLICIT_BATCH",),
                ("INT8", "PREFER_PRECISION_CONSTRAINTS"),
                None,
                None,
                "GPU",
            ),
        ),
        (  # Jetson Orin, JetPack 6 (TensorRT 10.3): PTQ cache on DLA core 1
            ("10.3.0", "int8", False, True, True),
            {"dla_core": 1},
            ("int8-cache", (), ("INT8", "FP16", "GPU_FALLBACK"), "cache", None, "DLA"),
        ),
        (  # no cache: TensorRT calibrates; strict pins nothing (scales unknown before build)
            ("10.0.1", "int8", False, False, False),
            {"strict_types": True},
            (
                "int8-calibrate",
                (),
                ("INT8", "PREFER_PRECISION_CONSTRAINTS"),
                "batches",
                None,
                "GPU",
            ),
        ),
        (  # strict cache build pins INT8 on the layers the cache covers
            ("10.13.2", "int8", False, False, True),
            {"strict_types": True},
            ("int8-cache", (), ("INT8", "PREFER_PRECISION_CONSTRAINTS"), "cache", "int8", "GPU"),
        ),
        (  # TensorRT 11.4 on Orin DLA with the Q/DQ ONNX
            ("11.4.0", "int8", True, True, False),
            {},
            ("int8-qdq", (), ("GPU_FALLBACK",), None, None, "DLA"),
        ),
        (  # TensorRT 11 fp16: strongly typed, no FP16 flag; the ONNX types decide
            ("11.0.0", "fp16", False, False, False),
            {},
            ("typed", (), (), None, None, "GPU"),
        ),
    ],
)
def test_plan_rows(args, kwargs, expected):
    plan = plan_build(*args, **kwargs)
    assert (
        plan.path,
        plan.network_flags,
        plan.builder_flags,
        plan.calibration,
        plan.pin_precision,
        plan.device,
    ) == expected


def test_refusals_name_the_way_out():
    with pytest.raises(UsageError, match="Q/DQ ONNX written by qat export"):
        plan_build("11.4.0", "int8", False, False, True)
    with pytest.raises(UsageError, match="11.4\\+ on Jetson AGX Orin"):
        plan_build("11.1.0", "fp16", False, True, False)
    with pytest.raises(UsageError, match="older than 8.6"):
        plan_build("8.5.3", "fp32", False, False, False)
    with pytest.raises(UsageError, match="TensorRT-LLM preview"):
        plan_build("9.3.0", "fp32", False, False, False)
    with pytest.raises(UsageError, match="-t/--data_type 'int4'"):
        plan_build("10.3", "int4", False, False, False)
    with pytest.raises(UsageError, match="-u/--dla_core -1"):
        plan_build("10.3", "fp16", False, True, False, dla_core=-1)


def test_describe_lists_flags_and_notes():
    plan = plan_build("10.3.0", "int8", False, True, True, dla_core=0)
    lines = plan.describe()
    assert lines[0] == (
        "TensorRT 10.3, -t int8: int8-cache (implicit INT8, scales from the calibration cache)"
    )
    assert "  builder flags: INT8, FP16, GPU_FALLBACK" in lines
    assert "  device: DLA core 0 + GPU fallback" in lines
    assert "  INT8 scales: cache (IInt8EntropyCalibrator2)" in lines
    assert any("use a PTQ cache (--force_ptq)" in line for line in lines)


def test_profile_shapes():
    dynamic = OnnxInput("input_1", None, (3, 544, 960))
    assert profile_shapes(dynamic, 1, 8, 16) == (
        (1, 3, 544, 960),
        (8, 3, 544, 960),
        (16, 3, 544, 960),
    )
    # DLA: static shapes, every dimension at the max batch
    assert profile_shapes(dynamic, 1, 8, 16, use_dla=True) == ((16, 3, 544, 960),) * 3
    assert profile_shapes(OnnxInput("input_1", 4, (3, 544, 960)), 1, 8, 16) is None
    for bad in ((0, 1, 1), (2, 1, 4), (1, 8, 4), (1, 2.5, 4)):
        with pytest.raises(UsageError, match="need 1 <= min <= opt <= max"):
            profile_shapes(dynamic, *bad)


def test_parse_profile_spec():
    onnx_input = OnnxInput("input_1", None, (3, 544, 960))
    spec = "input_1,1x3x544x960,8x3x544x960,16x3x544x960"
    assert parse_profile_spec(spec, onnx_input) == (1, 8, 16)
    with pytest.raises(UsageError, match="'image' is not the model input"):
        parse_profile_spec(spec.replace("input_1", "image"), onnx_input)
    with pytest.raises(UsageError, match="shape '8x3x480x960' is not Nx3x544x960"):
        parse_profile_spec("input_1,1x3x544x960,8x3x480x960,16x3x544x960", onnx_input)
    with pytest.raises(UsageError, match="expected <input>,<min>,<opt>,<max>"):
        parse_profile_spec("input_1,1x3x544x960", onnx_input)


def test_read_onnx_info():
    info, has_qdq = read_onnx_info(tiny_model().SerializeToString(), "m.onnx")
    assert info == OnnxInput("input_1", None, (3, 32, 48)) and not has_qdq
    info, has_qdq = read_onnx_info(tiny_model(batch=2, qdq=True).SerializeToString(), "q.onnx")
    assert info == OnnxInput("input_1", 2, (3, 32, 48)) and has_qdq
    with pytest.raises(DataError, match="^junk.onnx: not an ONNX model"):
        read_onnx_info(b"\x08\x07junk\xff", "junk.onnx")

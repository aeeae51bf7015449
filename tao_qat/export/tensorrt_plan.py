"""TensorRT build plans as plain data, decided without TensorRT (int8_calibration.md §3, §5;
tao_detectnet_v2.md §8): what a TensorRT version implies for network creation flags, builder
flags, the INT8 path (calibration cache, calibration batches, explicitly quantized Q/DQ ONNX),
strict precision pinning and DLA with GPU fallback; plus the ONNX input facts and optimization
profile shapes the builder needs. ``export.tensorrt_engine`` applies the plan.
"""

import re
from dataclasses import dataclass

from tao_qat.common.errors import DataError, UsageError

DATA_TYPES = ("fp32", "fp16", "int8")
MIN_VERSION = (8, 6)
FIRST_DLA_11 = (11, 4)  # TensorRT 11.0-11.3 have no DLA; 11.4 brought it back (Orin)
PATHS = {
    "fp32": "FP32 kernels",
    "fp16": "FP16 where faster (FP16 builder flag)",
    "typed": "strongly typed: each layer runs in its ONNX tensor type",
    "int8-cache": "implicit INT8, scales from the calibration cache",
    "int8-calibrate": "implicit INT8, TensorRT entropy calibration on the given batches",
    "int8-qdq": "explicit INT8 from the Q/DQ nodes of the ONNX",
}


def parse_trt_version(version):
    """(major, minor, patch) of "10.3.0.26", "8.6" or a tuple such as (10, 3)."""
    if isinstance(version, tuple | list):
        parts = [int(v) for v in version][:3]
    else:
        match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?(?:\.\d+)*", str(version).strip())
        if not match:
            raise UsageError(f"--trt_version {version!r}: expected MAJOR.MINOR[.PATCH]")
        parts = [int(v) for v in match.groups() if v is not None]
    if len(parts) < 2:
        raise UsageError(f"--trt_version {version!r}: expected MAJOR.MINOR[.PATCH]")
    return tuple(parts + [0] * (3 - len(parts)))


def int8_paths(version):
    """INT8 paths of a TensorRT version: cache / calibrate / qdq up to 10.x, qdq only from 11."""
    return ("qdq",) if parse_trt_version(version)[0] >= 11 else ("cache", "calibrate", "qdq")


@dataclass(frozen=True)
class BuildPlan:
    """What the builder does, as names of TensorRT enum members (applied by ``build_engine``).

    Attributes:
        version: (major, minor) of the TensorRT that builds.
        path: key of PATHS.
        network_flags: NetworkDefinitionCreationFlag members ("EXPLICIT_BATCH", ...).
        builder_flags: BuilderFlag members ("INT8", "FP16", "GPU_FALLBACK", ...).
        calibration: "cache" (calibrator serving the cache), "batches" (calibrating) or None.
        pin_precision: "int8" / "fp16": strict mode sets this precision on the layers (int8:
            those whose outputs all have a cache scale), else None.
        device: "GPU" or "DLA"; dla_core: the DLA core, or None on the GPU.
        notes: one-line remarks for the log (ignored flags, deprecations, DLA rules).
    """

    version: tuple
    data_type: str
    path: str
    strongly_typed: bool
    network_flags: tuple
    builder_flags: tuple
    calibration: str | None
    pin_precision: str | None
    device: str
    dla_core: int | None
    notes: tuple

    def describe(self):
        """Human-readable lines (``qat convert --dry_run``)."""
        version = ".".join(str(v) for v in self.version)
        device = "GPU" if self.device == "GPU" else f"DLA core {self.dla_core} + GPU fallback"
        lines = [
            f"TensorRT {version}, -t {self.data_type}: {self.path} ({PATHS[self.path]})",
            f"  network flags: {', '.join(self.network_flags) or 'none'}",
            f"  builder flags: {', '.join(self.builder_flags) or 'none'}",
            f"  device: {device}",
        ]
        if self.calibration:
            lines.append(f"  INT8 scales: {self.calibration} (IInt8EntropyCalibrator2)")
        if self.pin_precision:
            lines.append(f"  strict: layer precision pinned to {self.pin_precision}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines


def _check_supported(version, data_type, qdq, use_dla, dla_core):
    """Raise UsageError (naming the flag) for a combination TensorRT ``version`` cannot build."""
    text = ".".join(str(v) for v in version)
    if data_type not in DATA_TYPES:
        raise UsageError(f"-t/--data_type {data_type!r}: expected one of {', '.join(DATA_TYPES)}")
    if version < MIN_VERSION:
        raise UsageError(f"TensorRT {text}: older than 8.6, the oldest version tao_qat supports")
    if version[0] == 9:
        raise UsageError(f"TensorRT {text} (a TensorRT-LLM preview) is not supported: use 8.6+")
    if qdq and data_type != "int8":
        raise UsageError(
            f"-t/--data_type {data_type}: the ONNX model has Q/DQ nodes (explicit INT8); "
            "use -t int8"
        )
    if use_dla and data_type == "fp32":
        raise UsageError("--use_dla: DLA runs FP16 or INT8 only; use -t fp16 or -t int8")
    if use_dla and dla_core < 0:
        raise UsageError(f"-u/--dla_core {dla_core}: must be >= 0")
    if version[0] >= 11 and data_type == "int8" and not qdq:
        raise UsageError(
            f"-t int8: TensorRT {text} removed implicit quantization, so calibration caches "
            "are ignored; build the explicitly quantized Q/DQ ONNX written by qat export"
        )
    if version[0] >= 11 and use_dla and version < FIRST_DLA_11:
        raise UsageError(
            f"--use_dla: TensorRT {text} has no DLA support (use 11.4+ on Jetson AGX Orin, "
            "or TensorRT 8.6 / 10.x)"
        )
    if version[0] < 11 and use_dla and qdq:
        raise UsageError(
            f"--use_dla: TensorRT {text} builds DLA INT8 engines from a calibration cache; "
            "export with --force_ptq and build the float ONNX with its cache"
        )


def _plan_notes(version, data_type, qdq, use_dla, has_cache, strict_types, path, dla_core):
    text = ".".join(str(v) for v in version)
    notes = []
    if version[0] >= 12:
        notes.append(f"TensorRT {text} is newer than 11.x: applying the 11.x rules")
    if has_cache and path != "int8-cache":
        notes.append("-c/--cal_cache_file: not used by this build (no implicit INT8)")
    ignored = version[0] >= 11 or (qdq and version[0] == 10) or data_type == "fp32"
    if strict_types and ignored:
        notes.append("-s/--strict_type_constraints: ignored (no precision choice to constrain)")
    if path in ("int8-cache", "int8-calibrate") and version >= (10, 1):
        notes.append("implicit INT8 is deprecated since TensorRT 10.1 and gone in 11")
    if path == "int8-qdq" and version[0] >= 10:
        notes.append("strongly typed: layers without Q/DQ run in the ONNX type (FP32)")
    if version[0] >= 11 and data_type == "fp16":
        notes.append(
            f"TensorRT {text} has no FP16 flag: give an FP16-typed ONNX "
            "(python -m modelopt.onnx.autocast) for FP16 kernels"
        )
    if use_dla:
        notes.append(
            f"DLA core {dla_core}: static shapes (min = opt = max batch); layers DLA cannot "
            "run fall back to the GPU"
        )
        if path == "int8-cache":
            notes.append("DLA needs a scale for every tensor: use a PTQ cache (--force_ptq)")
    return tuple(notes)


def plan_build(version, data_type, qdq, use_dla, has_cache, *, strict_types=False, dla_core=0):
    """The build plan of TensorRT ``version`` for these choices (pure; raises UsageError).

    Args:
        version: "10.3.0", (10, 3) or (10, 3, 0); the TensorRT that builds the engine.
        data_type: "fp32", "fp16" or "int8".
        qdq: the ONNX is explicitly quantized (has QuantizeLinear / DequantizeLinear nodes).
        use_dla: build for a DLA core (Jetson) with GPU fallback.
        has_cache: a calibration cache is available for implicit INT8.
        strict_types: TAO's -s: no FP16 fallback for INT8, layer precision pinned (preferred).
    """
    version = parse_trt_version(version)[:2]
    _check_supported(version, data_type, qdq, use_dla, dla_core)
    major = version[0]
    strongly_typed = major >= 11 or (major == 10 and qdq)
    if data_type == "int8":
        path = "int8-qdq" if qdq else ("int8-cache" if has_cache else "int8-calibrate")
    else:
        path = "typed" if major >= 11 else data_type
    network_flags = ("EXPLICIT_BATCH",) if major == 8 else ()
    if major == 10 and strongly_typed:
        network_flags = ("STRONGLY_TYPED",)
    builder_flags = []
    if not strongly_typed:
        if data_type == "int8":
            builder_flags.append("INT8")
        if data_type == "fp16" or (data_type == "int8" and not strict_types):
            builder_flags.append("FP16")
        if strict_types and data_type != "fp32":
            builder_flags.append("PREFER_PRECISION_CONSTRAINTS")
    if use_dla:
        builder_flags.append("GPU_FALLBACK")
    pin = None
    if strict_types and not strongly_typed:
        pin = {"int8-cache": "int8", "fp16": "fp16"}.get(path)
    return BuildPlan(
        version=version,
        data_type=data_type,
        path=path,
        strongly_typed=strongly_typed,
        network_flags=network_flags,
        builder_flags=tuple(builder_flags),
        calibration={"int8-cache": "cache", "int8-calibrate": "batches"}.get(path),
        pin_precision=pin,
        device="DLA" if use_dla else "GPU",
        dla_core=dla_core if use_dla else None,
        notes=_plan_notes(
            version, data_type, qdq, use_dla, has_cache, strict_types, path, dla_core
        ),
    )


@dataclass(frozen=True)
class OnnxInput:
    """The image input of an exported model: name, batch (None = dynamic), (C, H, W)."""

    name: str
    batch: int | None
    chw: tuple


def read_onnx_info(onnx_bytes, source):
    """(OnnxInput, has_qdq) of a serialized ONNX model; DataError names ``source``."""
    import onnx

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # protobuf DecodeError and friends
        raise DataError(f"{source}: not an ONNX model ({type(exc).__name__})") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    dims = [inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
    if not dims or len(dims[0]) != 4:
        raise DataError(f"{source}: expected one NCHW image input, got {len(inputs)} inputs")
    values = [d.dim_value if d.HasField("dim_value") else None for d in dims[0]]
    if None in values[1:]:
        raise DataError(f"{source}: input {inputs[0].name} has a symbolic C, H or W")
    has_qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    return OnnxInput(inputs[0].name, values[0] or None, tuple(values[1:])), has_qdq


def profile_shapes(onnx_input, min_batch=1, opt_batch=1, max_batch=1, use_dla=False):
    """Optimization profile (min, opt, max) NCHW shapes, or None for a static-batch model.

    DLA needs static shapes, so with ``use_dla`` all three use ``max_batch``.
    """
    batches = (min_batch, opt_batch, max_batch)
    if any(not isinstance(b, int) or b < 1 for b in batches) or not (
        min_batch <= opt_batch <= max_batch
    ):
        raise UsageError(
            f"batch sizes min {min_batch}, opt {opt_batch}, max {max_batch}: "
            "need 1 <= min <= opt <= max"
        )
    if onnx_input.batch is not None:
        return None
    if use_dla:
        batches = (max_batch,) * 3
    return tuple((b, *onnx_input.chw) for b in batches)


def parse_profile_spec(text, onnx_input):
    """(min, opt, max) batches from tao-converter's ``-p name,1x3xHxW,8x3xHxW,16x3xHxW``."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4:
        raise UsageError(f"-p/--profile {text!r}: expected <input>,<min>,<opt>,<max> (NxCxHxW)")
    if parts[0] != onnx_input.name:
        raise UsageError(f"-p/--profile: input {parts[0]!r} is not the model input")
    batches = []
    for shape in parts[1:]:
        try:
            dims = tuple(int(v) for v in shape.lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) != 4 or dims[1:] != onnx_input.chw:
            chw = "x".join(str(v) for v in onnx_input.chw)
            raise UsageError(f"-p/--profile: shape {shape!r} is not Nx{chw}")
        batches.append(dims[0])
    return tuple(batches)

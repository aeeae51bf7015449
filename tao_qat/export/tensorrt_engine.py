"""TensorRT engines from exported ONNX models: applies a ``tensorrt_plan.BuildPlan`` with the
real TensorRT Python API (8.6, 10.x, 11.x) and runs ``qat convert`` (the role of tao-converter
and of export ``--engine_file``; tao_detectnet_v2.md §6, §8; int8_calibration.md §3, §5).
TensorRT is imported only inside ``build_engine``; without it the one-line
MissingDependencyError of ``common.optional`` is raised.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from tao_qat.common.errors import DataError, MissingDependencyError, UsageError
from tao_qat.common.fileio import atomic_write_bytes, check_writable_output
from tao_qat.common.optional import NO_GPU, require_cuda_context, require_tensorrt
from tao_qat.export.tensorrt_plan import (
    DATA_TYPES,
    BuildPlan,
    parse_profile_spec,
    parse_trt_version,
    plan_build,
    profile_shapes,
    read_onnx_info,
)

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE = 2 << 30
__all__ = [
    "BuildPlan",
    "ConvertOptions",
    "EngineBuild",
    "build_engine",
    "plan_build",
    "run_convert",
]


@dataclass(frozen=True)
class EngineBuild:
    """Result of ``build_engine``: the file, the plan applied, the profile, cache coverage."""

    path: Path
    plan: BuildPlan
    shapes: tuple | None
    coverage: object | None


def _validate_inputs(data_type, qdq, has_cache, calibration_batches, workspace_bytes):
    if data_type not in DATA_TYPES:
        raise UsageError(f"-t/--data_type {data_type!r}: expected one of {', '.join(DATA_TYPES)}")
    if not isinstance(workspace_bytes, int) or workspace_bytes < 1 << 20:
        raise UsageError(f"-w/--max_workspace_size {workspace_bytes}: need at least 1 MiB")
    if data_type == "int8" and not (qdq or has_cache or calibration_batches is not None):
        raise UsageError(
            "-t int8: needs -c/--cal_cache_file (an existing cache, TensorRT <= 10), "
            "calibration data, or a Q/DQ ONNX model"
        )


def build_engine(
    onnx_path,
    engine_path,
    *,
    data_type="fp32",
    cal_cache_file=None,
    calibration_batches=None,
    qdq=False,
    min_batch=1,
    opt_batch=1,
    max_batch=1,
    workspace_bytes=DEFAULT_WORKSPACE,
    use_dla=False,
    dla_core=0,
    strict_types=False,
    force=False,
    key=None,
):
    """Build and serialize a TensorRT engine from an exported ONNX model.

    Args:
        onnx_path: exported model (NCHW input), plain or encrypted with ``key``.
        data_type: "fp32", "fp16" or "int8".
        cal_cache_file: TensorRT calibration cache. Used when it exists (implicit INT8); when
            it does not and ``calibration_batches`` are given, TensorRT's cache is written there.
        calibration_batches: iterable of float32 [B, C, H, W] in [0, 1] (same B each).
        qdq: the ONNX is explicitly quantized (also detected from its nodes).
        min_batch, opt_batch, max_batch: optimization profile of a dynamic-batch model.
        workspace_bytes: builder workspace pool limit.
        use_dla, dla_core: build for a DLA core with GPU fallback.
        strict_types: TAO's -s (see ``plan_build``).
        force: overwrite an existing engine.
    Returns EngineBuild. Raises MissingDependencyError without TensorRT or a GPU.
    """
    from tao_qat.common.crypto import load_bytes
    from tao_qat.export import tensorrt_calibrator as calib

    engine_path = check_writable_output(engine_path, force)
    onnx_bytes = load_bytes(onnx_path, key)
    onnx_input, has_qdq = read_onnx_info(onnx_bytes, onnx_path)
    if qdq and not has_qdq:
        raise UsageError(f"{onnx_path}: qdq requested but the model has no Q/DQ nodes")
    qdq = qdq or has_qdq
    has_cache = cal_cache_file is not None and Path(cal_cache_file).is_file()
    _validate_inputs(data_type, qdq, has_cache, calibration_batches, workspace_bytes)
    cache = calib.load_cache_for_build(cal_cache_file) if has_cache and not qdq else None
    shapes = profile_shapes(onnx_input, min_batch, opt_batch, max_batch, use_dla)

    trt = require_tensorrt()
    plan = plan_build(
        trt.__version__,
        data_type,
        qdq,
        use_dla,
        has_cache,
        strict_types=strict_types,
        dla_core=dla_core,
    )
    for note in plan.notes:
        logger.warning("%s", note)
    if plan.calibration == "batches":
        require_cuda_context()
    trt_logger = trt.Logger(
        trt.Logger.VERBOSE if logger.isEnabledFor(logging.DEBUG) else trt.Logger.WARNING
    )
    builder = _create_builder(trt, trt_logger)
    network_flags = 0
    for name in plan.network_flags:
        network_flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DataError(f"{onnx_path}: TensorRT cannot parse the model ({'; '.join(errors)})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if shapes:
        profile = builder.create_optimization_profile()
        profile.set_shape(onnx_input.name, *shapes)
        config.add_optimization_profile(profile)
    if plan.device == "DLA":
        _configure_dla(trt, builder, config, plan.dla_core, max_batch)
    feed = coverage = None
    if plan.calibration:
        feed, coverage = _attach_calibrator(
            trt,
            builder,
            config,
            network,
            onnx_input,
            onnx_path,
            cache,
            batches=calibration_batches if plan.calibration == "batches" else None,
            cache_path=None if has_cache else cal_cache_file,
            opt_batch=opt_batch,
            dla=use_dla,
        )
    if plan.pin_precision:
        scaled = set(cache.amax) if plan.pin_precision == "int8" else None
        pinned = calib.pin_layer_precision(trt, network, plan.pin_precision, scaled)
        logger.info("strict: %d layers pinned to %s", pinned, plan.pin_precision)
    serialized = builder.build_serialized_network(network, config)
    if feed is not None and feed.error is not None:
        raise feed.error
    if serialized is None:
        raise DataError(
            f"{onnx_path}: TensorRT could not build the engine (rerun with --verbose for its log)"
        )
    atomic_write_bytes(engine_path, bytes(serialized))
    logger.info("wrote %s (TensorRT %s, %s)", engine_path, trt.__version__, plan.path)
    return EngineBuild(engine_path, plan, shapes, coverage)


def _attach_calibrator(
    trt,
    builder,
    config,
    network,
    onnx_input,
    onnx_path,
    cache,
    *,
    batches,
    cache_path,
    opt_batch,
    dla,
):
    """Set ``config.int8_calibrator`` (and a fixed-batch calibration profile for a dynamic
    model) serving ``cache`` (a LoadedCache) or ``batches``; returns (feed, cache coverage)."""
    from tao_qat.export import tensorrt_calibrator as calib

    coverage = None
    if cache is not None:
        tensors = calib.network_tensor_names(trt, network)
        coverage = calib.report_coverage(cache, tensors, dla=dla)
    feed = calib.CalibrationFeed(
        batches,
        onnx_input.chw,
        cache_bytes=calib.cache_bytes_for_version(cache, trt.__version__) if cache else None,
        cache_path=cache_path,
        default_batch=onnx_input.batch or opt_batch,
    )
    if onnx_input.batch and feed.batch_size != onnx_input.batch:
        raise DataError(
            f"calibration batches of {feed.batch_size}: {onnx_path} has a static batch of "
            f"{onnx_input.batch} (use -b {onnx_input.batch})"
        )
    config.int8_calibrator = calib.make_calibrator(trt, feed, cache and cache.algorithm)
    if onnx_input.batch is None:  # calibration runs at one fixed batch size
        profile = builder.create_optimization_profile()
        shape = (feed.batch_size, *onnx_input.chw)
        profile.set_shape(onnx_input.name, shape, shape, shape)
        config.set_calibration_profile(profile)
    return feed, coverage


def _create_builder(trt, trt_logger):
    """trt.Builder, or MissingDependencyError(NO_GPU) when TensorRT cannot initialise CUDA."""
    try:
        builder = trt.Builder(trt_logger)
    except (TypeError, RuntimeError) as exc:  # pybind11: factory returned nullptr
        raise MissingDependencyError(
            f"{NO_GPU} (TensorRT could not initialise CUDA: {exc})"
        ) from None
    if builder is None:
        raise MissingDependencyError(f"{NO_GPU} (TensorRT could not initialise CUDA)")
    return builder


def _configure_dla(trt, builder, config, dla_core, max_batch):
    """Default device DLA on ``dla_core`` (GPU_FALLBACK is among the plan's builder flags)."""
    cores = builder.num_DLA_cores
    if cores == 0:
        raise UsageError("--use_dla: this device has no DLA (Jetson AGX Xavier / Orin have DLA)")
    if dla_core >= cores:
        raise UsageError(f"-u/--dla_core {dla_core}: this device has {cores} DLA cores")
    if max_batch > builder.max_DLA_batch_size:
        raise UsageError(
            f"-m/--max_batch_size {max_batch}: above the DLA maximum {builder.max_DLA_batch_size}"
        )
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = dla_core


def detected_trt_version():
    """Version of the TensorRT that would build here (``tensorrt.__version__``, else the
    installed wheel's metadata), or None."""
    from tao_qat.export.calibration_cache import installed_trt_version

    try:
        return require_tensorrt().__version__
    except MissingDependencyError:
        return installed_trt_version()


def _check_target_version(requested):
    """``--trt_version`` with a build: it must name the installed TensorRT (which builds)."""
    if requested is None:
        return
    installed = require_tensorrt().__version__
    given = len(str(requested).split("."))
    if parse_trt_version(installed)[:given] != parse_trt_version(requested)[:given]:
        raise UsageError(
            f"--trt_version {requested}: the installed TensorRT {installed} builds the engine; "
            "build on the target device (or omit --trt_version)"
        )


@dataclass
class ConvertOptions:
    """Flags of ``qat convert`` as plain values (batch sizes: -b opt / calibration, -m max)."""

    input_path: str
    engine_file: str | None = None
    cal_cache_file: str | None = None
    data_type: str = "fp32"
    batch_size: int = 8
    max_batch_size: int = 16
    profile: str | None = None
    workspace_bytes: int = DEFAULT_WORKSPACE
    strict_types: bool = False
    use_dla: bool = False
    dla_core: int = 0
    trt_version: str | None = None
    key: str | None = None
    cal_data_file: str | None = None
    batches: int = -1
    dry_run: bool = False
    force: bool = False
    echo: object = print


def run_convert(options):
    """``qat convert``: rewrite a cache header (no -e), print the plan (--dry_run) or build.

    Returns the new header, the BuildPlan or the EngineBuild.
    """
    from tao_qat.common.crypto import load_bytes
    from tao_qat.export.tensorrt_calibrator import retarget_cache

    echo = options.echo
    if options.engine_file is None and not options.dry_run:
        if options.trt_version is None:
            raise UsageError(
                "-e/--engine_file: required to build an engine (--trt_version V alone rewrites "
                "the header of a calibration cache)"
            )
        target = options.cal_cache_file or options.input_path
        old, new = retarget_cache(target, options.trt_version)
        echo(f"{target}: {old} -> {new}" if old != new else f"{target}: already {new}")
        return new
    onnx_input, has_qdq = read_onnx_info(
        load_bytes(options.input_path, options.key), options.input_path
    )
    if options.profile:
        batches = parse_profile_spec(options.profile, onnx_input)
    else:
        # opt = -b, capped at -m (tao-converter's -b is the calibration batch first)
        batches = (1, min(options.batch_size, options.max_batch_size), options.max_batch_size)
    if options.dry_run:
        version = options.trt_version or detected_trt_version()
        if version is None:
            raise UsageError("--dry_run: TensorRT is not installed; name it with --trt_version")
        has_cache = bool(options.cal_cache_file) and Path(options.cal_cache_file).is_file()
        _validate_inputs(
            options.data_type, has_qdq, has_cache, options.cal_data_file, options.workspace_bytes
        )
        plan = plan_build(
            version,
            options.data_type,
            has_qdq,
            options.use_dla,
            has_cache,
            strict_types=options.strict_types,
            dla_core=options.dla_core,
        )
        shapes = profile_shapes(onnx_input, *batches, use_dla=options.use_dla)
        for line in plan.describe():
            echo(line)
        shown = (
            "static batch"
            if shapes is None
            else ", ".join(
                f"{label} {'x'.join(str(v) for v in shape)}"
                for label, shape in zip(("min", "opt", "max"), shapes, strict=True)
            )
        )
        echo(f"  profile {onnx_input.name}: {shown}")
        return plan
    _check_target_version(options.trt_version)
    kwargs = dict(
        data_type=options.data_type,
        cal_cache_file=options.cal_cache_file,
        min_batch=batches[0],
        opt_batch=batches[1],
        max_batch=batches[2],
        workspace_bytes=options.workspace_bytes,
        use_dla=options.use_dla,
        dla_core=options.dla_core,
        strict_types=options.strict_types,
        force=options.force,
        key=options.key,
    )
    if options.cal_data_file:
        from tao_qat.export.tensorfile import TensorFile

        with TensorFile(options.cal_data_file) as tensors:
            calibration = tensors.batches(
                options.batch_size, max_batches=options.batches, drop_remainder=True
            )
            result = build_engine(
                options.input_path, options.engine_file, calibration_batches=calibration, **kwargs
            )
    else:
        result = build_engine(options.input_path, options.engine_file, **kwargs)
    device = "GPU" if result.plan.device == "GPU" else f"DLA core {result.plan.dla_core}"
    echo(f"{result.path}: TensorRT {detected_trt_version()} engine ({result.plan.path}, {device})")
    return result

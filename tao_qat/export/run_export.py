"""``qat export``: Keras model -> ONNX, and for INT8 the calibration cache, ``--cal_json_file``
and an explicitly quantized (Q/DQ) ONNX, with ``--target onnxruntime`` also the CPU INT8 ONNX,
optionally a DeepStream config and a TensorRT engine (tao_detectnet_v2.md §8 flags and steps,
§6 QAT scales; int8_calibration.md §2, §3, §6).

Steps: check flags and outputs (before TensorFlow starts) -> load the model -> QAT model: peel
out the float model and its ranges -> float ONNX (NCHW, TAO names) -> INT8: QAT ranges, or PTQ
entropy calibration of every tensor in ONNX Runtime -> cache + JSON + Q/DQ ONNX -> CPU INT8
ONNX (QAT: the tensors it has no range for calibrated) -> DeepStream config -> engine. Every
file is staged and renamed into place only at the end (``export.staged_outputs``). See
docs/export.md "qat export".
"""

import dataclasses
import logging
import time
from pathlib import Path

from tao_qat.common.errors import UsageError
from tao_qat.export.calibration_data import calibration_batches, choose_source, save_tensorfile
from tao_qat.export.engine_step import build_engine_file, check_engine_builder
from tao_qat.export.export_outputs import (
    describe_outputs,
    write_cpu_int8,
    write_deepstream,
    write_int8,
)
from tao_qat.export.int8_scales import (
    add_cpu_int8_ranges,
    scales_from_calibration,
    scales_from_qat,
)
from tao_qat.export.staged_outputs import StagedOutputs

logger = logging.getLogger(__name__)

DATA_TYPES = ("fp32", "fp16", "int8")
TARGETS = ("tensorrt", "onnxruntime")  # onnxruntime: the TensorRT outputs + the CPU INT8 ONNX
DEFAULT_OPSET = 13  # onnx_export.DEFAULT_OPSET (TAO: 12; per-channel Q/DQ needs 13)
MIN_OPSET = 11
QDQ_SUFFIX, CACHE_SUFFIX, CPU_INT8_SUFFIX = ".qdq.onnx", ".cal.bin", ".cpu_int8.onnx"
CPU_INT8_MIN_OPSET = 13  # cpu_int8.MIN_OPSET (per-channel DequantizeLinear)
CALIBRATION_FLAGS = "-e/--experiment_spec, --cal_image_dir or --cal_data_file"


@dataclasses.dataclass
class ExportOptions:
    """Flags of ``qat export`` as plain values (defaults as TAO's, see the CLI help)."""

    model_path: str
    output_path: str | None = None
    key: str | None = None
    spec_path: str | None = None
    data_type: str = "fp32"
    target: str = "tensorrt"
    cal_cache_file: str | None = None
    cal_json_file: str | None = None
    cal_image_dir: str | None = None
    cal_data_file: str | None = None
    batches: int = 10
    batch_size: int = 16
    max_batch_size: int = 1
    min_batch_size: int = 1
    opt_batch_size: int = 1
    max_workspace_size: int = 2 << 30
    strict_type_constraints: bool = False
    static_batch_size: int = -1
    target_opset: int = DEFAULT_OPSET
    force_ptq: bool = False
    gen_ds_config: bool = False
    engine_file: str | None = None
    trt_version: str | None = None
    results_dir: str | None = None
    force: bool = False
    echo: object = print
    progress_stream: object = None


@dataclasses.dataclass
class ExportPaths:
    """Files ``run_export`` writes (None: not written)."""

    onnx: Path
    qdq_onnx: Path | None = None
    cpu_int8_onnx: Path | None = None
    cal_cache: Path | None = None
    cal_json: Path | None = None
    ds_config: Path | None = None
    labels: Path | None = None
    engine: Path | None = None
    tensorfile: Path | None = None

    def all(self):
        return [p for p in dataclasses.astuple(self) if p is not None]


@dataclasses.dataclass
class ExportResult:
    """What ``run_export`` did.

    Attributes:
        paths: ExportPaths; data_type: fp32 / fp16 / int8; qat: the model had fake-quant layers.
        input_shape: (C, H, W) of the ONNX input; scales: Int8Scales (int8 only) with
            ``tensor_amax`` (cache keys), ``activation_amax`` / ``weight_amax`` (Q/DQ, by layer),
            ``cpu_tensor_amax`` (CPU INT8 model).
        calibration: description of the calibration image source, or None.
        cpu_kernels: ``cpu_int8_runtime.KernelCounts`` of the CPU INT8 model in ONNX Runtime
            (``integer_convs``, ``float_convs``, ``ops``), or None.
        timings: {step: seconds}.
    """

    paths: ExportPaths
    data_type: str
    qat: bool
    input_shape: tuple
    scales: object = None
    calibration: str | None = None
    cpu_kernels: object = None
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def tensor_amax(self):
        """{ONNX tensor: amax} written to the cache and the JSON ({} unless int8)."""
        return self.scales.tensor_amax if self.scales else {}

    @property
    def activation_amax(self):
        """{Keras layer: amax} of the activation Q/DQ pairs ({} unless int8)."""
        return self.scales.activation_amax if self.scales else {}

    @property
    def weight_amax(self):
        """{conv layer: amax [C_out] or float} of the weight Q/DQ pairs ({} unless int8)."""
        return self.scales.weight_amax if self.scales else {}


def onnx_output_path(options):
    """``-o`` with ".onnx" appended if missing; default ``<results_dir or model folder>/
    <model stem>.onnx``."""
    if options.output_path:
        path = Path(options.output_path)
        return path if path.suffix == ".onnx" else path.with_name(path.name + ".onnx")
    model = Path(options.model_path)
    folder = Path(options.results_dir) if options.results_dir else model.parent
    return folder / f"{model.stem}.onnx"


def _sibling(onnx_path, suffix):
    return onnx_path.with_name(onnx_path.name[: -len(".onnx")] + suffix)


def plan_paths(options, source):
    """ExportPaths of ``options`` (int8 outputs only for int8, DeepStream files next to -o)."""
    from tao_qat.export.deepstream import CONFIG_NAME, LABELS_NAME

    onnx = onnx_output_path(options)
    paths = ExportPaths(onnx=onnx)
    if options.data_type == "int8":
        paths.qdq_onnx = _sibling(onnx, QDQ_SUFFIX)
        paths.cal_cache = Path(options.cal_cache_file or _sibling(onnx, CACHE_SUFFIX))
        paths.cal_json = Path(options.cal_json_file) if options.cal_json_file else None
        if source is not None and source.save_tensorfile is not None:
            paths.tensorfile = source.save_tensorfile
        if options.target == "onnxruntime":
            paths.cpu_int8_onnx = _sibling(onnx, CPU_INT8_SUFFIX)
    if options.gen_ds_config:
        paths.ds_config, paths.labels = onnx.parent / CONFIG_NAME, onnx.parent / LABELS_NAME
    if options.engine_file:
        paths.engine = Path(options.engine_file)
    return paths


def check_options(options):
    """Validate flag values and combinations without loading the model."""
    if options.data_type not in DATA_TYPES:
        raise UsageError(f"--data_type {options.data_type}: one of {', '.join(DATA_TYPES)}")
    if options.target not in TARGETS:
        raise UsageError(f"--target {options.target}: one of {', '.join(TARGETS)}")
    for flag, value in (
        ("--batches", options.batches),
        ("--batch_size", options.batch_size),
        ("--max_batch_size", options.max_batch_size),
    ):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be >= 1")
    if options.static_batch_size == 0 or options.static_batch_size < -1:
        raise UsageError(f"--static_batch_size {options.static_batch_size}: -1 (dynamic) or > 0")
    if options.target_opset < MIN_OPSET:
        raise UsageError(f"--target_opset {options.target_opset}: must be >= {MIN_OPSET}")
    if options.gen_ds_config and not options.spec_path:
        raise UsageError(
            "--gen_ds_config needs -e/--experiment_spec (class names and "
            "clustering settings for labels.txt and nvinfer_config.txt)"
        )
    if options.data_type != "int8":
        given = [
            flag
            for flag, value in (
                ("--cal_cache_file", options.cal_cache_file),
                ("--cal_json_file", options.cal_json_file),
                ("--cal_image_dir", options.cal_image_dir),
                ("--cal_data_file", options.cal_data_file),
                ("--force_ptq", options.force_ptq),
                ("--target onnxruntime", options.target == "onnxruntime"),
            )
            if value
        ]
        if given:
            logger.warning("%s: ignored without --data_type int8", ", ".join(given))
    elif options.target == "onnxruntime" and options.target_opset < CPU_INT8_MIN_OPSET:
        raise UsageError(
            f"--target onnxruntime needs --target_opset >= {CPU_INT8_MIN_OPSET} "
            f"(per-channel weights), got {options.target_opset}"
        )
    if options.data_type == "int8" and options.trt_version is not None:
        from tao_qat.export.calibration_cache import trt_version_number

        trt_version_number(options.trt_version)  # UsageError for a malformed version


def _is_qat_file(options):
    from tao_qat.modeling.model_io import read_model_config
    from tao_qat.quantization.naming import is_qat_config

    return is_qat_config(read_model_config(options.model_path, key=options.key))


def _calibration_source(options, qat):
    if options.data_type != "int8":
        return None
    if qat and not options.force_ptq and options.target != "onnxruntime":
        if options.cal_image_dir or options.cal_data_file:
            logger.warning(
                "QAT model: its learned ranges are used and the calibration data is "
                "ignored (add --force_ptq to calibrate instead)"
            )
        return None
    source = choose_source(options.cal_data_file, options.cal_image_dir, options.spec_path)
    if source is None:
        if qat and not options.force_ptq:
            raise UsageError(
                "--target onnxruntime on a QAT model needs calibration images for the conv "
                f"outputs QAT has no range for: give {CALIBRATION_FLAGS}"
            )
        why = "--force_ptq" if qat else "--data_type int8 on a float (non-QAT) model"
        raise UsageError(f"{why} needs calibration images: give {CALIBRATION_FLAGS}")
    if qat and not options.force_ptq:
        logger.info("QAT model: %s calibrates only what QAT has no range for", source.describe())
    return source


def _load_float_model(options, qat, timings):
    """(float keras.Model, QAT (activation_amax, weight_amax) or None)."""
    from tao_qat.modeling.model_io import load_model_file

    start = time.perf_counter()
    if not qat:
        model = load_model_file(options.model_path, key=options.key)
        timings["load"] = time.perf_counter() - start
        return model, None
    from tao_qat.quantization import QAT_CUSTOM_OBJECTS, extract_quantization

    model = load_model_file(options.model_path, QAT_CUSTOM_OBJECTS, key=options.key)
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    float_model, activation_amax, weight_amax = extract_quantization(model)
    timings["peel_out"] = time.perf_counter() - start
    return float_model, (activation_amax, weight_amax)


def _calibrate(options, source, experiment, onnx_model, timings, tensor_names=None):
    """Entropy calibration in ONNX Runtime: {tensor: amax} of ``tensor_names`` (default every
    float tensor) over the batches of ``source``."""
    from tao_qat.export.ptq import calibrate_onnx

    batches = calibration_batches(
        source,
        _input_chw(onnx_model),
        batch_size=options.batch_size,
        max_batches=options.batches,
        experiment=experiment,
        fixed_batch=options.static_batch_size if options.static_batch_size > 0 else None,
        progress_stream=options.progress_stream,
    )
    start = time.perf_counter()
    tensor_amax = calibrate_onnx(onnx_model, batches, method="entropy", tensor_names=tensor_names)
    timings["calibration"] = time.perf_counter() - start
    return tensor_amax


def _int8_scales(options, source, experiment, onnx_model, names, float_model, ranges, timings):
    """Int8Scales: the QAT ranges (``ranges`` given, no ``--force_ptq``) or PTQ; with
    ``--target onnxruntime`` also the CPU INT8 ranges (QAT: the gaps calibrated)."""
    if ranges is not None and not options.force_ptq:
        scales = scales_from_qat(*ranges, names)
    else:
        from tao_qat.quantization.policy import plan_quantization

        tensor_amax = _calibrate(options, source, experiment, onnx_model, timings)
        scales = scales_from_calibration(
            tensor_amax, names, onnx_model, plan_quantization(float_model.get_config())
        )
    if options.target == "onnxruntime":
        add_cpu_int8_ranges(
            scales,
            onnx_model,
            lambda tensors: _calibrate(options, source, experiment, onnx_model, timings, tensors),
        )
    return scales


def _input_chw(onnx_model):
    dims = onnx_model.graph.input[0].type.tensor_type.shape.dim
    return tuple(int(dim.dim_value) for dim in dims[1:])


def run_export(options):
    """Export ``options.model_path``; print and return an ExportResult.

    Raises:
        UsageError (OutputExistsError) for bad or contradictory flags and existing outputs,
        all before the model is loaded; DataError for unreadable models or calibration data;
        MissingDependencyError when ``--engine_file`` cannot be built here.
    """
    from tao_qat.common.crypto import save_bytes

    check_options(options)
    qat = _is_qat_file(options)
    source = _calibration_source(options, qat)
    paths = plan_paths(options, source)
    if paths.engine:
        check_engine_builder()
    timings, begin = {}, time.perf_counter()
    with StagedOutputs(force=options.force) as staged:
        staged.check(paths.all())
        experiment = None
        if options.spec_path:
            from tao_qat.spec.loader import load_experiment_spec

            experiment = load_experiment_spec(options.spec_path)
        float_model, ranges = _load_float_model(options, qat, timings)
        from tao_qat.export.onnx_export import check_onnx, convert_keras_to_onnx

        start = time.perf_counter()
        onnx_model, names = convert_keras_to_onnx(
            float_model, static_batch_size=options.static_batch_size, opset=options.target_opset
        )
        check_onnx(onnx_model)
        timings["onnx"] = time.perf_counter() - start
        save_bytes(staged.stage(paths.onnx), onnx_model.SerializeToString(), key=options.key)
        input_chw = _input_chw(onnx_model)
        result = ExportResult(paths, options.data_type, qat, input_chw, timings=timings)
        trt_version = options.trt_version
        if options.data_type == "int8":
            if source is not None and source.save_tensorfile is not None:
                source = save_tensorfile(
                    source,
                    staged.stage(source.save_tensorfile),
                    input_chw,
                    options.batch_size,
                    options.batches,
                )
            result.calibration = None if source is None else source.describe()
            result.scales = _int8_scales(
                options, source, experiment, onnx_model, names, float_model, ranges, timings
            )
            start = time.perf_counter()
            trt_version = write_int8(staged, paths, options, result.scales, onnx_model, names)
            timings["int8_outputs"] = time.perf_counter() - start
            if paths.cpu_int8_onnx:
                start = time.perf_counter()
                result.cpu_kernels = write_cpu_int8(
                    staged, paths, options, result.scales, onnx_model
                )
                timings["cpu_int8"] = time.perf_counter() - start
        elif qat:
            logger.info("QAT model exported as %s: its ranges are not used", options.data_type)
        if options.gen_ds_config:
            write_deepstream(
                staged, paths, options, experiment, input_chw, trt_version or _default_version()
            )
        if paths.engine:
            start = time.perf_counter()
            build_engine_file(staged, paths, options)
            timings["engine"] = time.perf_counter() - start
        staged.commit()
    timings["total"] = time.perf_counter() - begin
    if options.results_dir:
        _write_status(options.results_dir, result)
    for line in describe_outputs(paths, options, result):
        options.echo(line)
    return result


def _default_version():
    from tao_qat.export.calibration_cache import default_trt_version

    return default_trt_version()


def _write_status(results_dir, result):
    from tao_qat.training.status import StatusLog

    StatusLog(Path(results_dir) / "status.json").write(
        {
            "kpi": {
                "data_type": result.data_type,
                "qat": result.qat,
                "files": [str(p) for p in result.paths.all()],
            }
        },
        status="SUCCESS",
        message="Export finished successfully.",
    )

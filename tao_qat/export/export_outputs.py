"""The files ``qat export`` writes besides the float ONNX: the INT8 trio (TensorRT calibration
cache, ``--cal_json_file``, Q/DQ ONNX) from one ``Int8Scales``, the ONNX Runtime CPU INT8 model
(``--target onnxruntime``), the DeepStream config, and the lines announcing every output
(tao_detectnet_v2.md §6, §8; int8_calibration.md §2, §4, §6).
Everything is written into ``StagedOutputs`` staging paths and committed by ``run_export``.
"""

import logging

from tao_qat.export.int8_scales import check_tensor_keys

logger = logging.getLogger(__name__)

NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}  # DeepStream network-mode


def write_int8(staged, paths, options, scales, onnx_model, names):
    """Cache (header for ``--trt_version``, default the installed TensorRT else 8.6.1), JSON
    (if asked) and Q/DQ ONNX (encrypted with ``-k``); returns the TensorRT version used."""
    from tao_qat.common.crypto import save_bytes
    from tao_qat.export.calibration_cache import (
        default_trt_version,
        write_cal_json,
        write_calibration_cache,
    )
    from tao_qat.export.qdq import insert_qdq

    check_tensor_keys(scales.tensor_amax, onnx_model)
    version = options.trt_version or default_trt_version()
    write_calibration_cache(staged.stage(paths.cal_cache), scales.tensor_amax, version)
    if paths.cal_json:
        write_cal_json(staged.stage(paths.cal_json), scales.tensor_amax)
    per_channel = options.target_opset >= 13
    if not per_channel:
        logger.warning(
            "--target_opset %d: per-tensor weight scales in the Q/DQ model (per-channel needs 13)",
            options.target_opset,
        )
    qdq = insert_qdq(
        onnx_model, scales.activation_amax, scales.weight_amax, names, per_channel=per_channel
    )
    save_bytes(staged.stage(paths.qdq_onnx), qdq.SerializeToString(), key=options.key)
    return version


def write_cpu_int8(staged, paths, options, scales, onnx_model):
    """``<name>.cpu_int8.onnx`` (encrypted with ``-k``): ``cpu_int8.quantize_for_onnxruntime``
    of the float ONNX with ``scales.cpu_tensor_amax`` (U8S8, per-channel weights; QAT: the
    learned weight ranges). Returns the KernelCounts ONNX Runtime's optimized graph has."""
    from tao_qat.common.crypto import save_bytes
    from tao_qat.export.cpu_int8 import quantize_for_onnxruntime
    from tao_qat.export.cpu_int8_runtime import count_kernels

    weights = scales.weight_amax if scales.source == "qat" else None
    int8 = quantize_for_onnxruntime(onnx_model, scales.cpu_tensor_amax, weights, per_channel=True)
    kernels = count_kernels(int8)
    total = kernels.integer_convs + kernels.float_convs
    logger.info(
        "ONNX Runtime runs %d of %d convs as QLinearConv (%d QLinearAdd)",
        kernels.integer_convs,
        total,
        kernels.ops["QLinearAdd"],
    )
    if not kernels.integer_convs:
        logger.warning(
            "ONNX Runtime fuses no conv of %s into QLinearConv: it will run no faster than FP32",
            paths.cpu_int8_onnx,
        )
    save_bytes(staged.stage(paths.cpu_int8_onnx), int8.SerializeToString(), key=options.key)
    return kernels


def write_deepstream(staged, paths, options, experiment, input_chw, trt_version):
    """``nvinfer_config.txt`` + ``labels.txt`` next to the ONNX. INT8 for TensorRT <= 10: the
    float ONNX + the cache (implicit INT8); for TensorRT >= 11 (no cache support): the Q/DQ
    ONNX and no ``int8-calib-file``."""
    from tao_qat.export.deepstream import write_deepstream_config
    from tao_qat.postprocessing.settings import build_clustering_settings

    folder = paths.onnx.parent
    names = [target.name for target in experiment.cost_function_config.target_classes]
    onnx_file, cache = paths.onnx, paths.cal_cache
    if options.data_type == "int8" and int(str(trt_version).split(".")[0]) >= 11:
        onnx_file, cache = paths.qdq_onnx, None  # TensorRT 11 reads no cache: Q/DQ model
    bbox = experiment.model_config.objective_set.bbox
    staged.stage(paths.ds_config)
    staged.stage(paths.labels)
    write_deepstream_config(
        staged.staging_folder(folder),
        onnx_file=staged.as_seen_from_staging(folder, onnx_file),
        cal_cache_file=None if cache is None else staged.as_seen_from_staging(folder, cache),
        input_shape=input_chw,
        class_names=names,
        clustering=build_clustering_settings(experiment.postprocessing_config, names),
        network_mode=NETWORK_MODES[options.data_type],
        batch_size=options.static_batch_size
        if options.static_batch_size > 0
        else options.max_batch_size,
        bbox_scale=bbox.scale if bbox.scale else 35.0,
        bbox_offset=bbox.offset,
    )
    if options.key:
        logger.warning("the ONNX files are encrypted with -k: DeepStream needs them plain")


def describe_outputs(paths, options, result):
    """One line per file written (what it is and where it went)."""
    batch = (
        f"batch {options.static_batch_size}" if options.static_batch_size > 0 else "dynamic batch"
    )
    lock = ", encrypted" if options.key else ""
    lines = [f"ONNX model ({batch}, opset {options.target_opset}{lock}): {paths.onnx}"]
    if result.scales is not None:
        origin = "QAT ranges" if result.scales.source == "qat" else f"PTQ on {result.calibration}"
        count = len(result.scales.tensor_amax)
        lines += [
            f"INT8 Q/DQ ONNX model (explicit quantization{lock}): {paths.qdq_onnx}",
            f"TensorRT calibration cache ({count} tensors, {origin}): {paths.cal_cache}",
        ]
    if paths.cpu_int8_onnx and result.cpu_kernels is not None:
        kernels = result.cpu_kernels
        calibrated = len(result.scales.cpu_calibrated)
        extra = f", {calibrated} tensors calibrated on {result.calibration}" if calibrated else ""
        lines.append(
            f"ONNX Runtime CPU INT8 model ({kernels.integer_convs} of "
            f"{kernels.integer_convs + kernels.float_convs} convs as QLinearConv, "
            f"{kernels.ops['QLinearAdd']} QLinearAdd{extra}{lock}): {paths.cpu_int8_onnx}"
        )
    if paths.cal_json:
        lines.append(f"Tensor scales JSON: {paths.cal_json}")
    if paths.tensorfile:
        lines.append(f"Calibration tensor file: {paths.tensorfile}")
    if paths.ds_config:
        lines.append(f"DeepStream config: {paths.ds_config} and {paths.labels}")
    if paths.engine:
        lines.append(f"TensorRT engine: {paths.engine}")
    return lines

"""DeepStream Gst-nvinfer config (``nvinfer_config.txt``) and ``labels.txt`` for an exported
DetectNet_v2 model (tao_detectnet_v2.md §8 ``--gen_ds_config``, completed to a runnable
primary-detector config).

Key names and value ranges follow DeepStream's gstnvinfer_property_parser: ``cluster-mode``
0 = OpenCV groupRectangles, 1 = DBSCAN, 2 = NMS, 3 = DBSCAN + NMS hybrid, 4 = none;
``network-mode`` 0 = FP32, 1 = INT8, 2 = FP16; ``minBoxes`` and ``detected-min-h`` are integers.
File paths are written relative to the config file, which is how nvinfer resolves them.
"""

import logging
import math
import os
from pathlib import Path

from tao_qat.common.errors import UsageError
from tao_qat.common.fileio import atomic_write_text, check_writable_output

logger = logging.getLogger(__name__)

CONFIG_NAME = "nvinfer_config.txt"
LABELS_NAME = "labels.txt"
NET_SCALE_FACTOR = "0.00392156862745098"  # 1/255: DetectNet_v2 inputs are RGB in [0, 1]
OUTPUT_BLOB_NAMES = ("output_cov/Sigmoid", "output_bbox/BiasAdd")
CLUSTER_MODES = {"dbscan": 1, "nms": 2, "hybrid": 3}
NETWORK_MODES = {0: "fp32", 1: "int8", 2: "fp16"}
# DeepStream's built-in DetectNet box parser hard-codes these (bboxNorm 35, centre offset 0.5).
DEEPSTREAM_BBOX_SCALE = 35.0
DEEPSTREAM_BBOX_OFFSET = 0.5


def _num(value):
    """Short decimal for a (possibly float32-rounded) spec value: 0.004999999888 -> 0.005."""
    return f"{float(value):.6g}"


def _relative(path, folder):
    path, folder = Path(path).resolve(), Path(folder).resolve()
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.as_posix()


def class_attributes(settings):
    """[(key, value)] of one ``[class-attrs-<id>]`` section from a ClusteringSettings.

    Mapping (TAO -> DeepStream): coverage_threshold -> pre-cluster-threshold (for NMS the
    larger of it and nms_confidence_threshold, since TAO keeps NMS boxes above both);
    dbscan_eps -> eps; dbscan_min_samples -> minBoxes (integer, >= 1);
    dbscan_confidence_threshold -> dbscan-min-score; nms_iou_threshold -> nms-iou-threshold;
    minimum_height -> detected-min-h (rounded up; DeepStream applies it in frame pixels);
    confidence_threshold -> post-cluster-threshold (only when > 0).
    """
    algorithm = settings.algorithm
    threshold = settings.coverage_threshold
    if algorithm == "nms":
        threshold = max(threshold, settings.nms_confidence_threshold)
    items = [("pre-cluster-threshold", _num(threshold))]
    if algorithm in ("dbscan", "hybrid"):
        items += [
            ("eps", _num(settings.dbscan_eps)),
            ("minBoxes", str(max(1, int(settings.dbscan_min_samples)))),
            ("dbscan-min-score", _num(settings.dbscan_confidence_threshold)),
        ]
    if algorithm in ("nms", "hybrid"):
        items.append(("nms-iou-threshold", _num(settings.nms_iou_threshold)))
    if settings.minimum_height > 0:
        items.append(("detected-min-h", str(math.ceil(settings.minimum_height))))
    if settings.confidence_threshold > 0:
        items.append(("post-cluster-threshold", _num(settings.confidence_threshold)))
    return items


def format_nvinfer_config(
    *,
    onnx_file,
    input_shape,
    class_names,
    clustering,
    network_mode=1,
    cal_cache_file=None,
    labels_file=LABELS_NAME,
    key=None,
    batch_size=1,
    output_blob_names=OUTPUT_BLOB_NAMES,
    gie_unique_id=1,
):
    """The text of ``nvinfer_config.txt`` (paths are used as given).

    Args:
        input_shape: (C, H, W) of the network input; C is 3 (RGB) or 1 (grey).
        class_names: target classes in network order; clustering: one ClusteringSettings per
            class (DeepStream has one cluster-mode: all classes must use the same algorithm).
        network_mode: 0 FP32, 1 INT8, 2 FP16.
    """
    channels, height, width = (int(v) for v in input_shape)
    if channels not in (1, 3):
        raise UsageError(f"input_shape: {channels} channels (DeepStream needs 1 or 3)")
    if network_mode not in NETWORK_MODES:
        raise UsageError(f"network_mode: {network_mode} is not one of 0 (fp32), 1 (int8), 2 (fp16)")
    if len(clustering) != len(class_names) or not class_names:
        raise UsageError(
            f"need one clustering setting per class: {len(clustering)} settings "
            f"for {len(class_names)} classes"
        )
    algorithms = sorted({s.algorithm for s in clustering})
    if len(algorithms) > 1:
        raise UsageError(
            f"postprocessing_config: DeepStream uses one clustering algorithm for "
            f"all classes, the spec mixes {', '.join(algorithms)}"
        )
    properties = [
        ("gpu-id", "0"),
        ("net-scale-factor", NET_SCALE_FACTOR),
        ("offsets", "0.0;0.0;0.0" if channels == 3 else "0"),
        ("model-color-format", "0" if channels == 3 else "2"),
        ("onnx-file", str(onnx_file)),
    ]
    if cal_cache_file is not None and network_mode == 1:
        properties.append(("int8-calib-file", str(cal_cache_file)))
    if key:
        properties.append(("tlt-model-key", key))
    properties += [
        ("labelfile-path", str(labels_file)),
        ("infer-dims", f"{channels};{height};{width}"),
        ("maintain-aspect-ratio", "0"),
        ("batch-size", str(int(batch_size))),
        ("network-mode", str(network_mode)),
        ("network-type", "0"),
        ("num-detected-classes", str(len(class_names))),
        ("output-blob-names", ";".join(output_blob_names)),
        ("output-tensor-meta", "0"),
        ("cluster-mode", str(CLUSTER_MODES[algorithms[0]])),
        ("process-mode", "1"),
        ("gie-unique-id", str(int(gie_unique_id))),
    ]
    lines = [
        "# DeepStream Gst-nvinfer config written by tao_qat (paths relative to this file)",
        "[property]",
    ]
    lines += [f"{k}={v}" for k, v in properties]
    for class_id, (name, settings) in enumerate(zip(class_names, clustering, strict=True)):
        lines += ["", f"# {name}", f"[class-attrs-{class_id}]"]
        lines += [f"{k}={v}" for k, v in class_attributes(settings)]
    return "\n".join(lines) + "\n"


def write_deepstream_config(
    folder,
    *,
    onnx_file,
    input_shape,
    class_names,
    clustering,
    network_mode=1,
    cal_cache_file=None,
    key=None,
    batch_size=1,
    output_blob_names=OUTPUT_BLOB_NAMES,
    bbox_scale=DEEPSTREAM_BBOX_SCALE,
    bbox_offset=DEEPSTREAM_BBOX_OFFSET,
    force=False,
):
    """Write ``folder/nvinfer_config.txt`` and ``folder/labels.txt`` atomically.

    Args:
        onnx_file / cal_cache_file: paths (written relative to ``folder``); the calibration
            cache is referenced only in INT8 mode.
        bbox_scale, bbox_offset: the spec's ``objective_set.bbox`` values; anything but 35 / 0.5
            only logs a warning, because DeepStream's built-in parser assumes those.
        force: overwrite existing files (else OutputExistsError before anything is written).
    Returns:
        (config path, labels path).
    """
    folder = Path(folder)
    config_path = check_writable_output(folder / CONFIG_NAME, force)
    labels_path = check_writable_output(folder / LABELS_NAME, force)
    if (bbox_scale, bbox_offset) != (DEEPSTREAM_BBOX_SCALE, DEEPSTREAM_BBOX_OFFSET):
        logger.warning(
            "bbox scale %s / offset %s: DeepStream's built-in DetectNet parser "
            "assumes 35 / 0.5; use a custom parse-bbox-func-name",
            bbox_scale,
            bbox_offset,
        )
    if network_mode == 1 and cal_cache_file is None:
        logger.info("INT8 without int8-calib-file: the ONNX model must carry Q/DQ nodes")
    for name in class_names:
        if not name or "\n" in name:
            raise UsageError(f"class name {name!r} cannot be written to {LABELS_NAME}")
    text = format_nvinfer_config(
        onnx_file=_relative(onnx_file, folder),
        input_shape=input_shape,
        class_names=list(class_names),
        clustering=list(clustering),
        network_mode=network_mode,
        cal_cache_file=None if cal_cache_file is None else _relative(cal_cache_file, folder),
        labels_file=LABELS_NAME,
        key=key,
        batch_size=batch_size,
        output_blob_names=output_blob_names,
    )
    atomic_write_text(labels_path, "".join(f"{name}\n" for name in class_names))
    atomic_write_text(config_path, text)
    return config_path, labels_path

"""Post-training calibration of an FP32 ONNX model: run it in ONNX Runtime on calibration
batches, histogram every float tensor, turn the histograms into amax values
(int8_calibration.md §1.5, §5, §8 item 1). TF-free: numpy, onnx and onnxruntime.

The result ``{ONNX tensor name: amax}`` names tensors of the exported graph, so it feeds the
TensorRT calibration cache directly (every tensor of the unfused network, as DLA wants), and
``layer_amax`` re-keys it by Keras layer for Q/DQ insertion (design.md "The scales dict").
"""

import logging
import time

import numpy as np

from tao_qat.common.errors import DataError
from tao_qat.export.calibration import DEFAULT_NUM_BINS, HistogramCollector, compute_amax
from tao_qat.export.onnx_names import as_name_map, expose_tensors

logger = logging.getLogger(__name__)


def float_tensors(onnx_model):
    """Names of the graph input and of every float32 tensor produced by a node, in graph
    order (types from ONNX shape inference; initializers and constants are not activations)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx_model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]}
    initializers = {init.name for init in graph.initializer}
    names = [inp.name for inp in graph.input if inp.name not in initializers]
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        names += [out for out in node.output if types.get(out) == onnx.TensorProto.FLOAT]
    return list(dict.fromkeys(names))


def collect_histograms(
    onnx_model,
    batches,
    tensor_names=None,
    *,
    num_bins=DEFAULT_NUM_BINS,
    providers=("CPUExecutionProvider",),
):
    """Histogram |x| of ``tensor_names`` (default: ``float_tensors``) over all batches.

    Args:
        onnx_model: float onnx.ModelProto with one image input.
        batches: iterable of float32 inputs in the model's layout ([B, C, H, W] for our export).
    Returns:
        {tensor name: HistogramCollector}, in ``tensor_names`` order.
    """
    import onnxruntime as ort

    names = as_name_map(onnx_model)
    tensor_names = list(tensor_names or float_tensors(onnx_model))
    collectors = {name: HistogramCollector(name, num_bins) for name in tensor_names}
    fetched = [name for name in tensor_names if name != names.input_name]
    session = ort.InferenceSession(
        expose_tensors(onnx_model, fetched).SerializeToString(), providers=list(providers)
    )
    start, images, count = time.perf_counter(), 0, 0
    for batch in batches:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        values = session.run(fetched, {names.input_name: batch})
        if names.input_name in collectors:
            collectors[names.input_name].collect(batch)
        for name, value in zip(fetched, values, strict=True):
            collectors[name].collect(value)
        images += batch.shape[0]
        count += 1
    if count == 0:
        raise DataError("no calibration batches")
    logger.info(
        "collected %d tensors over %d images (%d batches) in %.1f s",
        len(collectors),
        images,
        count,
        time.perf_counter() - start,
    )
    return collectors


def amax_from_histograms(collectors, method="entropy", **options):
    """{tensor: amax} from ``collect_histograms`` output (see calibration.AMAX_METHODS)."""
    start = time.perf_counter()
    amax = {
        name: compute_amax(*c.histogram(), method=method, **options)
        for name, c in collectors.items()
    }
    logger.info(
        "%s thresholds of %d tensors in %.2f s", method, len(amax), time.perf_counter() - start
    )
    return amax


def calibrate_onnx(
    onnx_model,
    batches,
    *,
    method="entropy",
    tensor_names=None,
    num_bins=DEFAULT_NUM_BINS,
    **options,
):
    """One call: histograms of every float tensor, then ``method``. Returns {tensor: amax}."""
    collectors = collect_histograms(onnx_model, batches, tensor_names, num_bins=num_bins)
    return amax_from_histograms(collectors, method, **options)


def layer_amax(amax_by_tensor, name_map, *, skip_heads=True):
    """Re-key {ONNX tensor: amax} by Keras layer using the export's OnnxNames.

    Tensors that carry no layer output are dropped; the output heads too unless
    ``skip_heads`` is False (TAO never quantizes them). Zero amax (a dead tensor) is kept.
    """
    names = as_name_map(name_map)
    out = {}
    for layer, tensor in names.layer_tensors.items():
        if tensor in amax_by_tensor and not (skip_heads and layer in names.head_layers):
            out[layer] = amax_by_tensor[tensor]
    return out


def save_histograms(path, collectors):
    """Save {name: HistogramCollector} to an .npz file (no pickled objects), e.g. to re-run
    the threshold search with other options later."""
    names = list(collectors)
    meta = np.zeros((len(names), 4))  # max, count, zeros before the range, width (-1: none)
    arrays = {}
    for number, name in enumerate(names):
        state = collectors[name].state()
        width = -1.0 if state["width"] is None else state["width"]
        meta[number] = state["max"], state["count"], state["zeros"], width
        counts = state["counts"]
        arrays[f"counts_{number}"] = np.zeros(0, np.int64) if counts is None else counts
    np.savez(path, names=np.array(names, dtype=str), meta=meta, **arrays)


def load_histograms(path):
    """Inverse of ``save_histograms``: {tensor name: HistogramCollector}."""
    try:
        data = np.load(path, allow_pickle=False)
        names, meta = data["names"], data["meta"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a histogram file ({exc})") from None
    collectors = {}
    for number, (name, row) in enumerate(zip(names.tolist(), meta, strict=True)):
        counts = data[f"counts_{number}"]
        state = {
            "name": name,
            "num_bins": DEFAULT_NUM_BINS,
            "max_bins": 16 * max(counts.size, DEFAULT_NUM_BINS),
            "max": row[0],
            "count": int(row[1]),
            "zeros": int(row[2]),
            "counts": counts if row[3] >= 0 else None,
            "width": row[3],
        }
        collectors[name] = HistogramCollector.from_state(state)
    return collectors

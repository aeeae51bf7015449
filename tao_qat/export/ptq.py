"""Post-training calibration of an FP32 ONNX model: run it in ONNX Runtime on calibration
batches, histogram every float tensor, turn the histograms into amax values
(int8_calibration.md §1.5, §5, §8 item 1). TF-free: numpy, onnx and onnxruntime.

The result ``{ONNX tensor name: amax}`` names tensors of the exported graph, so it feeds the
TensorRT calibration cache directly (every tensor of the unfused network, as DLA wants), and
``layer_amax`` re-keys it by Keras layer for Q/DQ insertion (design.md "The scales dict").
"""

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tao_qat.common.errors import DataError
from tao_qat.export.calibration import DEFAULT_NUM_BINS, HistogramCollector, compute_amax
from tao_qat.export.onnx_names import as_name_map, expose_tensors

logger = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


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


def calibration_session(onnx_model, fetched, *, providers=DEFAULT_PROVIDERS, intra_op_threads=0):
    """ONNX Runtime session of ``onnx_model`` that also outputs the tensors ``fetched``.

    Full graph optimisation (fusions blocked by an exposed tensor simply do not happen); no
    memory pattern (it would allocate a second, fresh block for the few tensors that are not
    outputs on the second run); ``intra_op_threads`` 0 is ONNX Runtime's default (one per
    physical core); idle threads do not spin, leaving the CPU to the binning thread.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False  # nearly every tensor is an output: halves page faults
    options.intra_op_num_threads = int(intra_op_threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    exposed = expose_tensors(onnx_model, fetched).SerializeToString()
    return ort.InferenceSession(exposed, options, providers=list(providers))


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _model_outputs(session, fetched, input_name, batches, overlap):
    """Yield (batch, [value of each fetched tensor]) per batch, zero-copy ORT outputs.

    With ``overlap``, ONNX Runtime computes batch k + 1 in a worker thread while the caller
    histograms batch k (ORT releases the GIL; at most two batches of outputs are alive).
    """
    batches = (np.ascontiguousarray(batch, dtype=np.float32) for batch in batches)
    if not overlap:
        for batch in batches:
            yield batch, session.run(fetched, {input_name: batch})
        return

    def run(batch):
        return batch, session.run(fetched, {input_name: batch})

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ptq-ort") as pool:
        pending = None
        for batch in batches:
            future = pool.submit(run, batch)
            if pending is not None:
                yield pending.result()
            pending = future
        if pending is not None:
            yield pending.result()


def collect_histograms(
    onnx_model,
    batches,
    tensor_names=None,
    *,
    num_bins=DEFAULT_NUM_BINS,
    providers=DEFAULT_PROVIDERS,
    intra_op_threads=None,
    overlap=True,
):
    """Histogram |x| of ``tensor_names`` (default: ``float_tensors``) over all batches.

    One pass: each batch runs once through ONNX Runtime with every tensor exposed as an output,
    and each output is histogrammed as soon as it exists (the collector's same-width extension
    makes a separate range pass unnecessary, calibration.py). Timings: docs/calibration.md §1.

    Args:
        onnx_model: float onnx.ModelProto with one image input.
        batches: iterable of float32 inputs in the model's layout ([B, C, H, W] for our export).
        intra_op_threads: ONNX Runtime intra-op threads; 0: its default (one per core); None:
            one core fewer than this process may use when ``overlap`` (that core bins), else 0.
        overlap: run ONNX Runtime on the next batch while histogramming the current one.
    Returns:
        {tensor name: HistogramCollector}, in ``tensor_names`` order.
    """
    names = as_name_map(onnx_model)
    tensor_names = list(tensor_names or float_tensors(onnx_model))
    collectors = {name: HistogramCollector(name, num_bins) for name in tensor_names}
    fetched = [name for name in tensor_names if name != names.input_name]
    if intra_op_threads is None:
        intra_op_threads = max(1, _usable_cores() - 1) if overlap else 0
    session = calibration_session(
        onnx_model, fetched, providers=providers, intra_op_threads=intra_op_threads
    )
    start, images, count, binning = time.perf_counter(), 0, 0, 0.0
    for batch, values in _model_outputs(session, fetched, names.input_name, batches, overlap):
        began = time.perf_counter()
        if names.input_name in collectors:
            collectors[names.input_name].collect(batch)
        for name, value in zip(fetched, values, strict=True):
            collectors[name].collect(value)
        del values  # free this batch's outputs before the next one arrives
        binning += time.perf_counter() - began
        images += batch.shape[0]
        count += 1
    if count == 0:
        raise DataError("no calibration batches")
    logger.info(
        "collected %d tensors over %d images (%d batches) in %.1f s (%.1f s histogramming)",
        len(collectors),
        images,
        count,
        time.perf_counter() - start,
        binning,
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

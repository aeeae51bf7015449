"""FP32 vs INT8 DetectNet_v2 on ONNX Runtime (CPU): latency and throughput at batch 1 and 8,
fused integer kernels, and (with a trained model and its spec) mAP.

Usage:
  python benchmarks/bench_cpu_int8.py                  # ResNet-18 384x384, random weights
  python benchmarks/bench_cpu_int8.py --model trees.hdf5 --spec trees_train_resnet18.txt
  python benchmarks/bench_cpu_int8.py --compare        # + the other INT8 variants tried

INT8 is ``export.cpu_int8.quantize_for_onnxruntime`` (BN folded, U8S8, per-channel weights).
Scales: a QAT model's own (tensors it lacks are calibrated), else PTQ (``ptq.calibrate_onnx``,
entropy by default) on ``--calib-images`` tiles of ``--calib-dir`` (the tree training tiles:
the validation tiles are what mAP is scored on). Models run interleaved (A, B, A, B ...) so a
shared machine's load hits both alike; latency is the median of ``--runs`` runs after
warm-up, throughput = batch / median latency. The load average is printed with the figures.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
TREE_TILES = REPO / "examples" / "trees" / "data" / "train" / "image_2"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="trained .hdf5 (float or QAT); default: random weights")
    parser.add_argument("--spec", help="experiment spec of --model: mAP on its validation data")
    parser.add_argument("--key", default=None, help="passphrase of an encrypted --model")
    parser.add_argument("--num-layers", type=int, default=18)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--calib-dir", default=str(TREE_TILES))
    parser.add_argument("--calib-images", type=int, default=8)
    parser.add_argument("--method", default="entropy", help="entropy, max, percentile or mse")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--runs", type=int, default=20, help="timed runs at batch 1")
    parser.add_argument("--runs-batch8", type=int, default=6, help="timed runs at batch 8")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-spinning", action="store_true", help="allow_spinning=0")
    parser.add_argument("--compare", action="store_true", help="also time other variants")
    parser.add_argument("--save-dir", help="write the FP32 and INT8 .onnx files here")
    return parser.parse_args()


def load_float_model(args):
    """(float keras model, QAT (activation_amax, weight_amax) or None)."""
    if not args.model:
        from tao_qat.modeling.detectnet import build_detectnet_v2

        shape = (args.height, args.width, 3)
        return build_detectnet_v2(args.num_layers, 1, shape), None
    from tao_qat.modeling.model_io import load_model_file
    from tao_qat.quantization import QAT_CUSTOM_OBJECTS, extract_quantization, is_qat_model

    model = load_model_file(args.model, QAT_CUSTOM_OBJECTS, key=args.key)
    if not is_qat_model(model):
        return model, None
    float_model, activation_amax, weight_amax = extract_quantization(model)
    return float_model, (activation_amax, weight_amax)


def calibration_images(folder, count, height, width):
    """float32 [N, 3, H, W] in [0, 1]: ``count`` tiles spread evenly over the sorted folder."""
    paths = sorted(Path(folder).glob("*.jpg")) + sorted(Path(folder).glob("*.png"))
    if not paths:
        raise SystemExit(f"{folder}: no .jpg/.png images")
    picks = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    images = [
        np.asarray(Image.open(p).convert("RGB").resize((width, height)), np.float32) / 255.0
        for p in picks
    ]
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))


def int8_scales(onnx_model, images, qat, method):
    """({tensor or layer: amax}, weight amax or None, how the scales were obtained)."""
    from tao_qat.export.cpu_int8 import cpu_int8_activation_tensors, uncovered_activation_tensors
    from tao_qat.export.ptq import calibrate_onnx

    batches = [images[i : i + 4] for i in range(0, len(images), 4)]
    if qat is None:
        tensors = cpu_int8_activation_tensors(onnx_model)
        return (
            calibrate_onnx(onnx_model, batches, method=method, tensor_names=tensors),
            None,
            (f"PTQ {method}, {len(images)} images, {len(tensors)} tensors"),
        )
    activation_amax, weight_amax = qat
    missing = uncovered_activation_tensors(onnx_model, activation_amax)
    amax = dict(activation_amax)
    if missing:
        amax.update(calibrate_onnx(onnx_model, batches, method=method, tensor_names=missing))
    return amax, weight_amax, f"QAT ({len(missing)} tensors QAT lacks: PTQ {method})"


def compare_variants(onnx_model, amax, images):
    """The other INT8 builds tried: {name: ModelProto}."""
    from tao_qat.export.cpu_int8 import quantize_for_onnxruntime

    variants = {
        "ours S8S8": quantize_for_onnxruntime(onnx_model, amax, activation_type="int8"),
        "ours U8S8 per-tensor w": quantize_for_onnxruntime(onnx_model, amax, per_channel=False),
        "ORT quantizer, our ranges": ort_quantizer_with_ranges(onnx_model, amax),
        "ORT quantize_static S8S8": ort_quantize_static(onnx_model, images),
    }
    variants["TensorRT-style Q/DQ"] = tensorrt_style(onnx_model, amax)
    return variants


def tensorrt_style(onnx_model, amax):
    """``export.qdq.insert_qdq`` (TensorRT placement: Q/DQ on conv and Add inputs only)."""
    from tao_qat.export.onnx_names import build_name_map, initializer_array
    from tao_qat.export.qdq import insert_qdq

    names = build_name_map(onnx_model)
    layer_of_tensor = {tensor: layer for layer, tensor in names.layer_tensors.items()}
    head_nodes = {names.conv_nodes[layer] for layer in names.head_layers}
    inputs = set()
    for node in onnx_model.graph.node:
        if node.op_type == "Conv" and node.name not in head_nodes:
            inputs.add(node.input[0])
        elif node.op_type == "Add":
            inputs.update(node.input)
    activations = {layer_of_tensor[t]: amax[t] for t in inputs if t in layer_of_tensor}
    weights = {}
    for layer, kernel_name in names.conv_kernels.items():
        if layer not in names.head_layers:
            kernel = initializer_array(onnx_model, kernel_name)
            weights[layer] = np.abs(kernel).reshape(kernel.shape[0], -1).max(axis=1)
    return insert_qdq(onnx_model, activations, weights, names)


def ort_quantizer_with_ranges(onnx_model, amax):
    """ONNX Runtime's own QDQ quantizer (U8S8, per channel) fed our ranges through its
    calibration cache (no calibration run), on the BN-folded graph."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    from tao_qat.export.cpu_int8_fold import fold_batchnorm

    folded, _ = fold_batchnorm(onnx_model)
    producers = {out: node for node in folded.graph.node for out in node.output}
    ranges = {}
    for tensor, value in amax.items():
        node = producers.get(tensor)
        if node is None and tensor != folded.graph.input[0].name:
            continue
        low = 0.0 if node is None or node.op_type == "Relu" else -value
        ranges[tensor] = TensorData(lowest=np.float32(low), highest=np.float32(value))
    for node in folded.graph.node:  # ORT fuses a ReLU by giving its input the ReLU's range
        if node.op_type == "Relu" and node.output[0] in ranges:
            ranges.setdefault(node.input[0], ranges[node.output[0]])
    heads = [node.name for node in folded.graph.node if node.name.startswith("output_")]
    with tempfile.TemporaryDirectory() as folder:
        cache, out = Path(folder) / "ranges.json", Path(folder) / "int8.onnx"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), cache)
        quantize_static(
            folded,
            out,
            None,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=heads,
            calibration_cache_path=cache,
        )
        return onnx.load(str(out))


def ort_quantize_static(onnx_model, images):
    """ONNX Runtime's quantize_static with its defaults (S8S8 QDQ, MinMax on the same images,
    per-channel weights) after quant_pre_process: the 1.38x baseline of trials.md."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"input_1": images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as folder:
        source, pre, out = (Path(folder) / name for name in ("f.onnx", "p.onnx", "q.onnx"))
        onnx.save(onnx_model, str(source))
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(str(out))


def time_interleaved(sessions, batch, runs, warmup):
    """{name: median seconds} running the sessions in turn on the same float32 batch."""
    feeds = {name: {session.get_inputs()[0].name: batch} for name, session in sessions.items()}
    for _ in range(warmup):
        for name, session in sessions.items():
            session.run(None, feeds[name])
    times = {name: [] for name in sessions}
    for _ in range(runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds[name])
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def evaluate_map(experiment_path, model_files, threads):
    """{name: mAP %} of ONNX files on the spec's validation split (DetectionScorer)."""
    from tao_qat.data.pipeline import build_dataset
    from tao_qat.inference.detect import DetectionScorer
    from tao_qat.inference.onnx_predictor import OnnxPredictor
    from tao_qat.spec.loader import load_experiment_spec

    experiment = load_experiment_spec(experiment_path)
    scorer = DetectionScorer.from_spec(experiment)
    spec_dir = Path(experiment_path).resolve().parent
    results = {}
    for name, path in model_files.items():
        dataset = build_dataset(experiment, "validation", batch_size=8, spec_dir=spec_dir)
        result, _ = scorer.evaluate(OnnxPredictor(path, num_threads=threads), dataset)
        results[name] = 100.0 * result.mean_average_precision
    return results


def main():
    args = parse_args()
    import onnx

    from tao_qat.export.cpu_int8 import quantize_for_onnxruntime
    from tao_qat.export.cpu_int8_runtime import count_kernels, make_session
    from tao_qat.export.onnx_export import convert_keras_to_onnx

    start = time.perf_counter()
    load_before = os.getloadavg()
    keras_model, qat = load_float_model(args)
    height, width, _ = (int(v) for v in keras_model.input_shape[1:])
    fp32, _ = convert_keras_to_onnx(keras_model)
    images = calibration_images(args.calib_dir, args.calib_images, height, width)
    t0 = time.perf_counter()
    amax, weight_amax, how = int8_scales(fp32, images, qat, args.method)
    t1 = time.perf_counter()
    int8 = quantize_for_onnxruntime(fp32, amax, weight_amax)
    t2 = time.perf_counter()
    models = {"FP32": fp32, "INT8 (ours)": int8}
    if args.compare:
        models.update(compare_variants(fp32, amax, images))

    spinning = False if args.no_spinning else None
    sessions = {
        name: make_session(model, args.threads, allow_spinning=spinning)
        for name, model in models.items()
    }
    reference = sessions["FP32"].run(None, {"input_1": images})
    rows = {}
    for name, model in models.items():
        kernels = count_kernels(model, args.threads)
        outputs = sessions[name].run(None, {"input_1": images})
        error = [
            float(np.abs(o - r).max() / max(np.abs(r).max(), 1e-12))
            for o, r in zip(outputs, reference, strict=True)
        ]
        rows[name] = {
            "int convs": kernels.integer_convs,
            "float convs": kernels.float_convs,
            "QLinearAdd": kernels.ops["QLinearAdd"],
            "rel err cov/bbox": f"{error[0]:.3f}/{error[1]:.3f}",
        }
    timings = {}
    for batch, runs in ((1, args.runs), (8, args.runs_batch8)):
        feed = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])))
        timings[batch] = time_interleaved(sessions, feed, runs, args.warmup)
    base = {batch: timings[batch]["FP32"] for batch in timings}
    table = []
    for name, row in rows.items():
        line = [name, row["int convs"], row["float convs"], row["QLinearAdd"]]
        for batch in (1, 8):
            seconds = timings[batch][name]
            line += [
                f"{seconds * 1000:.1f}",
                f"{batch / seconds:.1f}",
                f"{base[batch] / seconds:.2f}x",
            ]
        table.append(line + [row["rel err cov/bbox"]])
    headers = [
        "model",
        "int convs",
        "float convs",
        "QLinearAdd",
        "b1 ms",
        "b1 img/s",
        "b1 speedup",
        "b8 ms",
        "b8 img/s",
        "b8 speedup",
        "rel err cov/bbox",
    ]
    load_after = os.getloadavg()
    print(
        f"{keras_model.name} {height}x{width}, "
        f"{'model ' + args.model if args.model else 'random weights'}; scales: {how} "
        f"({t1 - t0:.1f} s), quantize {t2 - t1:.1f} s; onnxruntime threads={args.threads}, "
        f"median of {args.runs} (b1) / {args.runs_batch8} (b8) interleaved runs"
    )
    print(tabulate(table, headers=headers, tablefmt="github"))
    print(
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after "
        f"{load_after[0]:.2f} {load_after[1]:.2f} ({os.cpu_count()} CPUs)"
    )
    files = {}
    if args.save_dir or args.spec:
        folder = Path(args.save_dir or tempfile.mkdtemp(prefix="bench_cpu_int8_"))
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in (("fp32", fp32), ("int8", int8)):
            files[name] = folder / f"model_{name}.onnx"
            onnx.save(model, str(files[name]))
        print(f"wrote {', '.join(str(path) for path in files.values())}")
    if args.spec:
        scores = evaluate_map(
            args.spec, {"FP32": files["fp32"], "INT8": files["int8"]}, args.threads
        )
        print(
            f"mAP FP32 {scores['FP32']:.2f}  INT8 {scores['INT8']:.2f}  "
            f"(delta {scores['INT8'] - scores['FP32']:+.2f} points)"
        )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

"""Entropy calibration speed and agreement: ours vs ONNX Runtime's entropy calibrator (2048 bins).

Same FP32 ONNX model, same images, one process: time to collect histograms of every float
tensor and to search the thresholds, for both; then the per-tensor amax ratio ORT / ours.
Model: a trained .hdf5 (``--model``) or, by default, a randomly initialised ResNet-18
DetectNet_v2; images: the vendored validation tree tiles resized to the model input.

Usage: python benchmarks/bench_ptq_calibration.py [--model m.hdf5] [--images DIR] [--num 32]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load_batches(folder, num, height, width, batch=8):
    from tao_qat.inference.run_inference import list_images, load_image

    paths = list_images(folder)
    images = [load_image(paths[i % len(paths)], (width, height))[0] for i in range(num)]
    nchw = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
    return [nchw[i:i + batch] for i in range(0, num, batch)]


def ort_entropy(onnx_model, batches):
    import onnx
    from onnxruntime.quantization.calibrate import (
        CalibrationDataReader,
        CalibrationMethod,
        create_calibrator,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input_1": b} for b in batches])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.onnx"
        onnx.save(onnx_model, path)
        calibrator = create_calibrator(
            path, calibrate_method=CalibrationMethod.Entropy,
            augmented_model_path=f"{folder}/augmented.onnx",
            extra_options={"num_bins": 2048, "num_quantized_bins": 128})
        start = time.perf_counter()
        calibrator.collect_data(Reader())
        collected = time.perf_counter()
        ranges = calibrator.compute_data()
        searched = time.perf_counter()
    amax = {name: max(abs(float(v.range_value[0])), abs(float(v.range_value[1])))
            for name, v in ranges.data.items()}
    return amax, collected - start, searched - collected


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="trained .hdf5 (default: random ResNet-18)")
    parser.add_argument("--images", default=str(REPO / "examples/trees/data/val/image_2"))
    parser.add_argument("--num", type=int, default=32)
    args = parser.parse_args()

    from tao_qat.export.onnx_export import convert_keras_to_onnx
    from tao_qat.export.ptq import amax_from_histograms, collect_histograms
    from tao_qat.modeling.detectnet import build_detectnet_v2
    from tao_qat.modeling.model_io import load_model_file

    if args.model:
        model = load_model_file(args.model)
    else:
        model = build_detectnet_v2(num_layers=18, num_classes=1, input_shape=(384, 384, 3))
    height, width = model.input_shape[1:3]
    onnx_model, _ = convert_keras_to_onnx(model)
    batches = load_batches(args.images, args.num, height, width)

    start = time.perf_counter()
    collectors = collect_histograms(onnx_model, batches)
    collected = time.perf_counter()
    ours = amax_from_histograms(collectors, "entropy")
    searched = time.perf_counter()
    theirs, ort_collect, ort_search = ort_entropy(onnx_model, batches)

    common = [n for n in ours if n in theirs and ours[n] > 0]
    ratios = np.array([theirs[n] / ours[n] for n in common])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"model: {args.model or 'random ResNet-18'} {width}x{height}, {args.num} images")
    print(f"ours: {len(ours)} tensors, collect {collected - start:.1f} s, "
          f"search {searched - collected:.2f} s, total {searched - start:.1f} s")
    print(f"ORT:  {len(theirs)} tensors, collect {ort_collect:.1f} s, search {ort_search:.1f} s, "
          f"total {ort_collect + ort_search:.1f} s")
    print(f"speed-up (total): {(ort_collect + ort_search) / (searched - start):.1f}x; "
          f"search only: {ort_search / (searched - collected):.0f}x")
    print(f"amax ORT/ours over {len(common)} tensors: median {np.median(ratios):.3f}, "
          f"min {ratios.min():.3f}, max {ratios.max():.3f}, "
          f"within 10%: {np.mean(np.abs(ratios - 1) < 0.1):.0%}")


if __name__ == "__main__":
    main()

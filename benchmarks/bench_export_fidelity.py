"""How closely exported ONNX models reproduce a Keras model's raw outputs (before clustering).

Usage:
  python benchmarks/bench_export_fidelity.py --keras qat_demo/retrain_qat/weights/model.hdf5 \
      --onnx qat_demo/export/qat/model.qdq.onnx qat_demo/export/qat/model.cpu_int8.onnx

Every image of ``--images`` (default: the tree validation tiles) is resized to the network input
as ``qat inference`` does and run through the Keras model (the reference: for a QAT model, its
fake quantization) and each ONNX model in ONNX Runtime. Per model and output: the mean absolute
difference relative to the reference's mean absolute value, and the largest absolute
difference. mAP on a small validation set can move by a point for output differences far
below 1 % (a box crossing a threshold); this separates export infidelity from that noise.
"""

import argparse
from pathlib import Path

import numpy as np
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
VALIDATION_TILES = REPO / "examples" / "trees" / "data" / "val" / "image_2"


def run_all(predictor, images, batch):
    """(cov, bbox) of ``predictor`` over ``images`` [N, H, W, C], in batches of ``batch``."""
    outputs = [predictor(images[i:i + batch]) for i in range(0, len(images), batch)]
    return tuple(np.concatenate([out[k] for out in outputs]) for k in (0, 1))


def differences(reference, candidate):
    """{output: (relative mean abs difference, max abs difference)} for cov and bbox."""
    result = {}
    for name, ref, got in zip(("cov", "bbox"), reference, candidate, strict=True):
        delta = np.abs(got.astype(np.float64) - ref)
        result[name] = (delta.mean() / max(np.abs(ref).mean(), 1e-12), delta.max())
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keras", required=True, help="reference .hdf5 model")
    parser.add_argument("--onnx", nargs="+", required=True, help="exported .onnx models")
    parser.add_argument("--images", default=str(VALIDATION_TILES))
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()

    from tao_qat.inference.predictor import load_predictor
    from tao_qat.inference.run_inference import list_images, load_image

    reference = load_predictor(args.keras)
    height, width, channels = reference.input_shape
    paths = list_images(args.images)
    images = np.stack([load_image(p, (width, height), channels)[0] for p in paths])
    expected = run_all(reference, images, args.batch)
    rows = []
    for path in args.onnx:
        found = differences(expected, run_all(load_predictor(path), images, args.batch))
        rows.append([Path(path).name, *(f"{found[o][0]:.2%}" for o in ("cov", "bbox")),
                     *(f"{found[o][1]:.4f}" for o in ("cov", "bbox"))])
    print(f"reference {args.keras} on {len(paths)} images of {args.images}")
    print(tabulate(rows, headers=["model", "rel. diff cov", "rel. diff bbox", "max |d cov|",
                                  "max |d bbox|"], tablefmt="github"))


if __name__ == "__main__":
    main()

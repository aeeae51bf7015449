"""Entropy calibration speed and agreement: ours vs ONNX Runtime's entropy calibrator (2048 bins).

Same FP32 ONNX model, same images, same batches, one process, interleaved runs (ours, ORT, ORT,
ours, ...) so a shared machine's load hits both alike. Per run: wall and CPU time (all threads)
of collecting histograms of every float tensor and of the threshold search, for both; ORT's
collection includes ``create_calibrator`` (it builds the augmented model and its session there,
as ours does inside ``collect_histograms``). Then the per-tensor amax comparison.

Model: a trained .hdf5 (``--model``, with ``--spec`` for the images: the first training data
source, all images under its image directory, evenly spread) or, by default, a randomly
initialised ResNet-18 DetectNet_v2 at 384x384 on the vendored validation tree tiles.

Usage:
  python benchmarks/bench_ptq_calibration.py
  python benchmarks/bench_ptq_calibration.py --runs 2 \
      --model /tmp/demo_full/work/train_fp32/weights/model.hdf5 \
      --spec /tmp/demo_full/work/specs/train_fp32.txt
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="trained .hdf5 (default: random ResNet-18 at 384x384)")
    parser.add_argument("--spec", help="experiment spec: images of its first training source")
    parser.add_argument("--images", help="image folder (overrides --spec)")
    parser.add_argument("--num", type=int, default=32, help="calibration images")
    parser.add_argument("--batch", type=int, default=8, help="images per ONNX Runtime run")
    parser.add_argument("--runs", type=int, default=2, help="interleaved runs of each")
    parser.add_argument(
        "--intra-op-threads", type=int, default=None, help="ours (default: cores - 1)"
    )
    parser.add_argument("--no-overlap", action="store_true", help="ours: no ORT/binning overlap")
    parser.add_argument("--top", type=int, default=8, help="tensors listed that differ most")
    return parser.parse_args()


def image_paths(args):
    """Sorted images: --images, else every image under the spec's first training source."""
    if args.images:
        folder = Path(args.images)
    elif args.spec:
        from tao_qat.spec.loader import load_experiment_spec
        from tao_qat.spec.paths import resolve_spec_path, spec_dir_of

        experiment = load_experiment_spec(args.spec)
        source = experiment.dataset_config.data_sources[0].image_directory_path
        folder = Path(resolve_spec_path(source, spec_dir_of(args.spec)))
    else:
        folder = REPO / "examples/trees/data/val/image_2"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"{folder}: no images")
    return folder, paths


def load_batches(paths, num, height, width, batch):
    """float32 NCHW batches of ``num`` images spread evenly over ``paths`` (repeating them when
    there are fewer), resized like ``qat inference``."""
    from tao_qat.inference.run_inference import load_image

    picks = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, num)]
    images = [load_image(path, (width, height))[0] for path in picks]
    nchw = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2), dtype=np.float32)
    return [nchw[i : i + batch] for i in range(0, num, batch)]


class Clock:
    """Wall and process CPU time (user + system, all threads) since the last ``lap``."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()

    @staticmethod
    def _cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def lap(self):
        wall, cpu = time.perf_counter(), self._cpu()
        result = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return result


def ours_entropy(onnx_model, batches, args):
    from tao_qat.export.ptq import amax_from_histograms, collect_histograms

    clock = Clock()
    collectors = collect_histograms(
        onnx_model, batches, intra_op_threads=args.intra_op_threads, overlap=not args.no_overlap
    )
    collect = clock.lap()
    amax = amax_from_histograms(collectors, "entropy")
    search = clock.lap()
    return amax, collectors, collect, search


def ort_entropy(onnx_model, batches, input_name):
    import onnx
    from onnxruntime.quantization.calibrate import (
        CalibrationDataReader,
        CalibrationMethod,
        create_calibrator,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: b} for b in batches])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.onnx"
        onnx.save(onnx_model, path)
        clock = Clock()
        calibrator = create_calibrator(
            path,
            calibrate_method=CalibrationMethod.Entropy,
            augmented_model_path=f"{folder}/augmented.onnx",
            extra_options={"num_bins": 2048, "num_quantized_bins": 128},
        )
        calibrator.collect_data(Reader())
        collect = clock.lap()
        ranges = calibrator.compute_data()
        search = clock.lap()
    ranges = {name: tuple(float(v) for v in r.range_value) for name, r in ranges.data.items()}
    return ranges, collect, search


def producers(onnx_model):
    kinds = {out: node.op_type for node in onnx_model.graph.node for out in node.output}
    return {**kinds, **{inp.name: "input" for inp in onnx_model.graph.input}}


def report_run(number, ours, theirs):
    (_, _, o_collect, o_search), (_, t_collect, t_search) = ours, theirs
    o_total = [a + b for a, b in zip(o_collect, o_search, strict=True)]
    t_total = [a + b for a, b in zip(t_collect, t_search, strict=True)]
    print(
        f"| {number} | ours | {o_collect[0]:.2f} ({o_collect[1]:.2f}) | "
        f"{o_search[0]:.2f} ({o_search[1]:.2f}) | {o_total[0]:.2f} ({o_total[1]:.2f}) | |"
    )
    print(
        f"| {number} | ORT | {t_collect[0]:.2f} ({t_collect[1]:.2f}) | "
        f"{t_search[0]:.2f} ({t_search[1]:.2f}) | {t_total[0]:.2f} ({t_total[1]:.2f}) | "
        f"**{t_total[0] / o_total[0]:.1f}x** ({t_total[1] / o_total[1]:.1f}x CPU) |"
    )
    return t_total[0] / o_total[0], t_total[1] / o_total[1]


def report_agreement(onnx_model, ours, collectors, ranges, top):
    """amax ORT vs ours per tensor, by producer op, and the tensors that differ most. The
    column "keep" is ours with zero_bin="keep" (the zero bin left as collected, as ORT does):
    where it lands near ORT, the zero spike explains the difference (docs/calibration.md §2)."""
    from tao_qat.export.calibration import entropy_amax

    kinds = producers(onnx_model)
    common = [n for n in ours if n in ranges and ours[n] > 0]
    theirs = {n: max(abs(lo), abs(hi)) for n, (lo, hi) in ranges.items()}
    keep = {n: entropy_amax(*collectors[n].histogram(), zero_bin="keep") for n in common}
    rel = np.array([theirs[n] / ours[n] - 1 for n in common])
    print(
        f"\namax over {len(common)} tensors, (ORT - ours) / ours: median {np.median(rel):+.3f}, "
        f"median |.| {np.median(np.abs(rel)):.3f}, max |.| {np.abs(rel).max():.3f}, "
        f"within 10 %: {np.mean(np.abs(rel) < 0.1):.0%}"
    )
    print("\nmedians per producer (amax / max |x|):\n")
    print("| producer | tensors | (ORT - ours) / ours | max \\|.\\| | ours | ours, keep | ORT |")
    print("|---|---|---|---|---|---|---|")
    for kind in sorted({kinds.get(n, "?") for n in common}):
        names = [n for n in common if kinds.get(n, "?") == kind]
        diffs = np.array([theirs[n] / ours[n] - 1 for n in names])
        cells = [np.median([d[n] / collectors[n].max for n in names]) for d in (ours, keep, theirs)]
        print(
            f"| {kind} | {len(names)} | {np.median(diffs):+.3f} | {np.abs(diffs).max():.3f} | "
            + " | ".join(f"{c:.3f}" for c in cells)
            + " |"
        )
    print(
        "\n| tensor | producer | max \\|x\\| | ORT (min, max) | ours | ours, keep | ORT | "
        "ORT vs ours |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i in np.argsort(-np.abs(rel))[:top]:
        n = common[i]
        lo, hi = ranges[n]
        print(
            f"| {n} | {kinds.get(n, '?')} | {collectors[n].max:.4g} | ({lo:.3g}, {hi:.3g}) | "
            f"{ours[n]:.4g} | {keep[n]:.4g} | {theirs[n]:.4g} | {rel[i]:+.1%} |"
        )


def main():
    args = parse_args()
    from tao_qat.export.onnx_export import convert_keras_to_onnx
    from tao_qat.export.onnx_names import as_name_map

    if args.model:
        from tao_qat.modeling.model_io import load_model_file

        model = load_model_file(args.model)
    else:
        from tao_qat.modeling.detectnet import build_detectnet_v2

        model = build_detectnet_v2(num_layers=18, num_classes=1, input_shape=(384, 384, 3))
    height, width = model.input_shape[1:3]
    onnx_model, _ = convert_keras_to_onnx(model)
    input_name = as_name_map(onnx_model).input_name
    folder, paths = image_paths(args)
    batches = load_batches(paths, args.num, height, width, args.batch)

    print(
        f"model: {args.model or 'random ResNet-18'} {width}x{height}; {args.num} images "
        f"(of {len(paths)} in {folder}), batches of {args.batch}"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average at start "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print("\nseconds, wall (CPU all threads):\n")
    print("| run | calibrator | collect | search | total | ORT / ours |")
    print("|---|---|---|---|---|---|")
    speedups = []
    for run in range(args.runs):
        order = ("ours", "ort") if run % 2 == 0 else ("ort", "ours")
        results = {}
        for which in order:
            if which == "ours":
                results[which] = ours_entropy(onnx_model, batches, args)
            else:
                results[which] = ort_entropy(onnx_model, batches, input_name)
        speedups.append(report_run(run + 1, results["ours"], results["ort"]))
    print(
        f"\nload average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
        f"speed-up ORT / ours (wall): {', '.join(f'{s[0]:.1f}x' for s in speedups)}; "
        f"CPU: {', '.join(f'{s[1]:.1f}x' for s in speedups)}"
    )
    amax, collectors, _, _ = results["ours"]
    report_agreement(onnx_model, amax, collectors, results["ort"][0], args.top)


if __name__ == "__main__":
    main()

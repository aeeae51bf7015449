"""Pruning on a trained detector: size, FLOPs, ONNX Runtime latency and mAP before/after.

For each target (a ``-pth`` threshold, or a kept fraction of the convolution weights for which
the threshold is found by bisection): ``qat prune`` -> evaluate the pruned model -> retrain it
with ``load_graph`` -> evaluate again. Every model is also exported to FP32 ONNX and timed in
ONNX Runtime on the CPU (median of ``--runs`` batch-1 runs after warm-up, interleaved).

Usage (trained model and its training spec; the spec's validation split is scored):
    python benchmarks/bench_pruning.py --model results/weights/model.hdf5 --spec train.txt \
        --ratios 0.5 0.35 --retrain_epochs 15 --workdir /tmp/bench_pruning
Results: a markdown table on stdout and ``<workdir>/pruning_benchmark.json``.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained float model (.hdf5)")
    parser.add_argument("--spec", required=True, help="its training spec (records, validation)")
    parser.add_argument("--workdir", required=True, help="folder for pruned/retrained models")
    targets = parser.add_mutually_exclusive_group(required=True)
    targets.add_argument("--ratios", type=float, nargs="+", help="kept conv-weight fractions")
    targets.add_argument("--thresholds", type=float, nargs="+", help="qat prune -pth values")
    parser.add_argument("--retrain_epochs", type=int, default=15)
    parser.add_argument("--max_learning_rate", type=float, default=None,
                        help="peak learning rate of the retraining (default: the spec's)")
    parser.add_argument("--runs", type=int, default=20, help="timed ONNX Runtime runs per model")
    return parser.parse_args()


def retrain_spec(spec_path, pruned_model, epochs, max_learning_rate, out_path):
    """The training spec with ``load_graph`` of the pruned model and ``epochs`` epochs."""
    from tao_qat.spec.loader import load_experiment_spec
    from tao_qat.spec.paths import spec_dir_of

    spec = load_experiment_spec(spec_path)
    base = spec_dir_of(spec_path)
    for source in [*spec.dataset_config.data_sources, spec.dataset_config.validation_data_source]:
        for field in ("tfrecords_path", "image_directory_path"):
            value = getattr(source, field)
            if value and not Path(value).is_absolute():
                setattr(source, field, str((Path(base) / value).resolve()))
    spec.model_config.pretrained_model_file = str(pruned_model)
    spec.model_config.load_graph = True
    spec.training_config.num_epochs = epochs
    spec.training_config.checkpoint_interval = epochs
    if max_learning_rate:
        schedule = spec.training_config.learning_rate.soft_start_annealing_schedule
        schedule.max_learning_rate = max_learning_rate
    evaluation = spec.evaluation_config
    evaluation.first_validation_epoch = evaluation.validation_period_during_training = epochs
    out_path.write_text(text_format.MessageToString(spec))
    return out_path


def evaluate(spec, model, folder):
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate

    result = run_evaluate(EvaluateOptions(spec_path=str(spec), model_path=str(model),
                                          results_dir=str(folder), force=True,
                                          echo=lambda _: None))
    return 100 * float(result.mean_average_precision)


def size_of(model_path):
    """(parameters, conv+dense GFLOPs per image) of a Keras model file."""
    from tao_qat.modeling.model_io import load_model_file
    from tao_qat.pruning.report import conv_flops

    model = load_model_file(model_path)
    names = [layer.name for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    return int(model.count_params()), conv_flops(model, names) / 1e9


def export(model_path, onnx_path):
    from tao_qat.export.onnx_export import export_onnx
    from tao_qat.modeling.model_io import load_model_file

    export_onnx(load_model_file(model_path), onnx_path, force=True)
    return onnx_path


def median_latencies_ms(onnx_paths, runs):
    """{path: median batch-1 ms}, runs interleaved across models so load drifts hit all."""
    from tao_qat.inference.onnx_predictor import OnnxPredictor

    predictors = {path: OnnxPredictor(str(path)) for path in onnx_paths}
    height, width, channels = next(iter(predictors.values())).input_shape
    images = np.random.default_rng(0).random((1, height, width, channels), dtype=np.float32)
    times = {path: [] for path in onnx_paths}
    for round_index in range(runs + 2):
        for path, predictor in predictors.items():
            start = time.perf_counter()
            predictor(images)
            if round_index >= 2:  # two warm-up rounds
                times[path].append(time.perf_counter() - start)
    return {path: 1000 * float(np.median(t)) for path, t in times.items()}


def prune(model, target, by_ratio, out_path):
    from tao_qat.pruning.run_prune import PruneOptions, run_prune
    from tao_qat.pruning.threshold_search import choose_threshold

    threshold = choose_threshold(model, target)[0] if by_ratio else target
    run_prune(PruneOptions(model_path=str(model), output_path=str(out_path),
                           threshold=threshold, force=True, echo=lambda _: None))
    return threshold


def main():
    from tao_qat.training.trainer import TrainOptions, run_train

    args = parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    targets = args.ratios or args.thresholds
    rows = []
    base_params, base_gflops = size_of(args.model)
    models = {"unpruned": Path(args.model)}
    base_map = evaluate(args.spec, args.model, workdir / "eval_unpruned")
    rows.append({"model": "unpruned", "threshold": None, "parameters": base_params,
                 "gflops": base_gflops, "map": base_map})
    for target in targets:
        name = f"{'ratio' if args.ratios else 'pth'}_{target:g}"
        folder = workdir / name
        folder.mkdir(exist_ok=True)
        pruned = folder / "pruned.hdf5"
        threshold = prune(args.model, target, bool(args.ratios), pruned)
        params, gflops = size_of(pruned)
        pruned_map = evaluate(args.spec, pruned, folder / "eval_pruned")
        spec = retrain_spec(args.spec, pruned, args.retrain_epochs, args.max_learning_rate,
                            folder / "retrain_spec.txt")
        start = time.perf_counter()
        result = run_train(TrainOptions(spec_path=str(spec), results_dir=str(folder / "retrain"),
                                        force=True, resume=False, echo=lambda _: None))
        minutes = (time.perf_counter() - start) / 60
        retrained_map = evaluate(spec, result.model_path, folder / "eval_retrained")
        models[name] = pruned
        rows.append({"model": name, "threshold": threshold, "parameters": params,
                     "gflops": gflops, "map_pruned": pruned_map, "map": retrained_map,
                     "retrain_minutes": minutes})
        print(f"{name}: -pth {threshold:.4g}, {params} params, mAP pruned {pruned_map:.2f}, "
              f"retrained {retrained_map:.2f} ({minutes:.1f} min)", flush=True)
    onnx_paths = {name: export(path, workdir / f"{name}.onnx") for name, path in models.items()}
    latency = median_latencies_ms(list(onnx_paths.values()), args.runs)
    for row in rows:
        row["ort_ms_batch1"] = latency[onnx_paths[row["model"]]]
    report = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
              "machine": platform.processor() or platform.machine(),
              "load_average": os.getloadavg()[0], "retrain_epochs": args.retrain_epochs,
              "rows": rows}
    (workdir / "pruning_benchmark.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['date']}, {report['cores']} cores, load {report['load_average']:.1f}, "
          f"retraining {args.retrain_epochs} epochs")
    print("| model | -pth | parameters | GFLOPs | ORT CPU ms (batch 1) | mAP pruned | "
          "mAP retrained |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        share = row["parameters"] / base_params
        threshold = "-" if row["threshold"] is None else f"{row['threshold']:.4g}"
        pruned_map = f"{row['map_pruned']:.2f}" if "map_pruned" in row else "-"
        print(f"| {row['model']} | {threshold} | {row['parameters'] / 1e6:.2f} M "
              f"({100 * share:.0f} %) | {row['gflops']:.2f} | {row['ort_ms_batch1']:.1f} | "
              f"{pruned_map} | {row['map']:.2f} |")


if __name__ == "__main__":
    main()

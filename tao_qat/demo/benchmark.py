"""Throughput of the exported models: ONNX Runtime on the CPU (FP32, TensorRT-style Q/DQ INT8,
CPU INT8), and TensorRT FP16 vs INT8 when TensorRT, a GPU and tao_qat's engine runner exist.

Writes ``benchmark/benchmark.json``::

    {"onnxruntime": {variant: {"<batch>": {"median_ms", "images_per_second", "runs"}}},
     "tensorrt": {...} or {"skipped": "<reason>"}, "environment": {...}}
"""

import json
import logging
import os
import platform
import time

import numpy as np

from tao_qat.common.fileio import atomic_write_text
from tao_qat.common.progress import Progress
from tao_qat.demo import export_steps, steps
from tao_qat.demo.runner import Step, check_json

logger = logging.getLogger(__name__)

ORT_VARIANTS = ("fp32", "ptq_int8", "ptq_cpu_int8")
WARMUP_RUNS = 2


def time_predictor(predictor, batch_size, runs, seed=0):
    """Median seconds of ``runs`` calls of ``predictor`` on a random batch (after warm-up).

    Returns {"median_ms": float, "images_per_second": float, "runs": int}.
    """
    height, width, channels = predictor.input_shape
    images = np.random.default_rng(seed).random(
        (batch_size, height, width, channels), dtype=np.float32
    )
    for _ in range(WARMUP_RUNS):
        predictor(images)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor(images)
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    return {"median_ms": 1000 * median, "images_per_second": batch_size / median, "runs": runs}


def benchmark_onnxruntime(ctx):
    """{variant: {str(batch): timing}} for ORT_VARIANTS on the CPU."""
    from tao_qat.inference.onnx_predictor import OnnxPredictor

    sizes = ctx.settings.benchmark_batch_sizes
    results = {}
    with Progress(
        len(ORT_VARIANTS) * len(sizes),
        desc="benchmark (ONNX Runtime CPU)",
        every_steps=1,
        items_name="timings",
    ) as progress:
        for variant in ORT_VARIANTS:
            predictor = OnnxPredictor(str(export_steps.variant_path(ctx, variant)))
            results[variant] = {}
            for batch in sizes:
                results[variant][str(batch)] = time_predictor(
                    predictor, batch, ctx.settings.benchmark_runs
                )
                progress.update(1, items=1)
    return results


def tensorrt_missing_reason():
    """None when TensorRT, a GPU and tao_qat's engine builder are all here, else why not."""
    from tao_qat.common.errors import MissingDependencyError
    from tao_qat.common.optional import gpu_missing_reason
    from tao_qat.common.optional import tensorrt_missing_reason as trt
    from tao_qat.export.engine_step import check_engine_builder

    reason = trt() or gpu_missing_reason()
    if reason:
        return reason
    try:
        check_engine_builder()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def benchmark_tensorrt(ctx):
    """FP16 engine of the pruned FP32 model vs INT8 engine of the QAT model (GPU)."""
    from tao_qat.export.run_export import ExportOptions, run_export
    from tao_qat.inference.predictor import load_predictor

    folder = ctx.path("benchmark", "engines")
    jobs = {"fp16": steps.RETRAIN, "int8": steps.QAT}
    results = {}
    for data_type, source in jobs.items():
        engine = folder / f"{data_type}.engine"
        run_export(
            ExportOptions(
                model_path=str(steps.model_path(ctx, source)),
                output_path=str(folder / f"{data_type}.onnx"),
                spec_path=str(steps.spec_path(ctx, source)),
                data_type=data_type,
                engine_file=str(engine),
                max_batch_size=max(ctx.settings.benchmark_batch_sizes),
                force=True,
                echo=ctx.echo,
            )
        )
        predictor = load_predictor(str(engine), framework="tensorrt")
        results[data_type] = {
            str(b): time_predictor(predictor, b, ctx.settings.benchmark_runs)
            for b in ctx.settings.benchmark_batch_sizes
        }
    return results


def environment():
    import onnxruntime

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "load_average_1min": load,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def benchmark_path(ctx):
    return ctx.path("benchmark", "benchmark.json")


def benchmark_run(ctx):
    data = {"environment": environment(), "onnxruntime": benchmark_onnxruntime(ctx)}
    reason = tensorrt_missing_reason()
    if reason is None:
        from tao_qat.common.errors import QatError

        try:
            data["tensorrt"] = benchmark_tensorrt(ctx)
        except QatError as exc:  # e.g. no TensorRT predictor in this tao_qat yet
            reason = f"TensorRT benchmark failed: {exc}"
    if reason is not None:
        data["tensorrt"] = {"skipped": reason}
    atomic_write_text(benchmark_path(ctx), json.dumps(data, indent=2) + "\n")
    return {
        variant: data["onnxruntime"][variant]["1"]["images_per_second"]
        for variant in ORT_VARIANTS
        if "1" in data["onnxruntime"][variant]
    }


def benchmark_check(ctx):
    problem = check_json(benchmark_path(ctx), "onnxruntime", "tensorrt", "environment")
    if problem:
        return problem
    data = json.loads(benchmark_path(ctx).read_text())["onnxruntime"]
    for variant in ORT_VARIANTS:
        for timing in data.get(variant, {"-": {}}).values():
            if not np.isfinite(timing.get("images_per_second", np.nan)):
                return f"{benchmark_path(ctx)}: no throughput for {variant}"
    return None


def benchmark_step():
    return Step(
        "benchmark",
        "Benchmark FP32 vs INT8 throughput (ONNX Runtime CPU; TensorRT if present)",
        benchmark_run,
        lambda ctx: [benchmark_path(ctx)],
        benchmark_check,
        ("export_ptq", "export_qat"),
    )

"""The demo's report: ``report.md`` and ``report.html`` in the workdir with Tables 1 and 2,
the conclusions computed from them, training curves, precision/recall curves and the PTQ vs
QAT pictures; the same tables are printed at the end of ``qat demo``."""

import json
import logging
from pathlib import Path

from tao_qat.common.fileio import atomic_write_text
from tao_qat.demo import benchmark, export_steps, figures, pictures, steps, tables
from tao_qat.demo.document import BulletList, Heading, Paragraph, Picture, to_html, to_markdown
from tao_qat.demo.runner import Step

logger = logging.getLogger(__name__)

REPORT_MD, REPORT_HTML = "report.md", "report.html"
CURVES_PNG, PR_PNG = ("figures", "training_curves.png"), ("figures", "precision_recall.png")
ORT_LABELS = {
    "fp32": "FP32",
    "ptq_int8": "PTQ INT8, TensorRT-style Q/DQ",
    "ptq_cpu_int8": "INT8 for the CPU (ORT integer kernels)",
}


def _json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _size(path):
    path = Path(path)
    return path.stat().st_size if path.is_file() else None


def onnx_results(ctx, variant):
    return _json(export_steps.onnx_evaluation_dir(ctx, variant) / "results.json")


def keras_results(ctx, name):
    return _json(steps.evaluation_dir(ctx, name) / "results.json")


def main_tables(ctx):
    """(Table 1, conclusions, throughput Table 2, TensorRT table or reason, size table)."""
    fp32, ptq, qat = (onnx_results(ctx, v) for v in ("fp32", "ptq_int8", "qat_int8"))
    maps = [r["mean_average_precision"] if r else None for r in (fp32, ptq, qat)]
    said = tables.conclusions(*maps, ctx.settings.noise_points)
    bench = _json(benchmark.benchmark_path(ctx)) or {}
    speed = tables.throughput_table(
        bench.get("onnxruntime", {}), ORT_LABELS, ctx.settings.benchmark_batch_sizes
    )
    trt = bench.get("tensorrt") or {"skipped": "the benchmark step did not run"}
    trt_table = tables.tensorrt_rows(trt, ctx.settings.benchmark_batch_sizes)
    pruning = _json(ctx.path(*steps.PRUNED_MODEL).with_suffix(".pruning.json"))
    sizes = tables.size_table(
        pruning,
        [
            (
                "FP32, before pruning",
                "before",
                "Keras .hdf5",
                _size(steps.model_path(ctx, steps.FP32)),
            ),
            (
                "FP32, pruned + retrained",
                "after",
                "Keras .hdf5",
                _size(steps.model_path(ctx, steps.RETRAIN)),
            ),
            (
                "FP32, pruned + retrained",
                "after",
                "ONNX",
                _size(export_steps.variant_path(ctx, "fp32")),
            ),
            (
                "PTQ INT8, pruned",
                "after",
                "Q/DQ ONNX (float weights + scales)",
                _size(export_steps.variant_path(ctx, "ptq_int8")),
            ),
            (
                "QAT INT8, pruned",
                "after",
                "Q/DQ ONNX (float weights + scales)",
                _size(export_steps.variant_path(ctx, "qat_int8")),
            ),
            (
                "INT8 for the CPU, pruned",
                "after",
                "ONNX, int8 weights",
                _size(export_steps.variant_path(ctx, "ptq_cpu_int8")),
            ),
        ],
    )
    return tables.accuracy_table(fp32, ptq, qat), said, speed, trt_table or trt, sizes


def write_figures(ctx):
    """Training curves and the PR comparison; returns the written paths (workdir-relative)."""
    from tao_qat.training.status import read_status

    written = []
    runs = [
        (label, read_status(ctx.path(name, "status.json")))
        for name, label in (
            (steps.FP32, "FP32"),
            (steps.RETRAIN, "pruned, retrained"),
            (steps.QAT, "QAT"),
        )
    ]
    if any(records for _, records in runs):
        figures.plot_training_curves(ctx.path(*CURVES_PNG), runs)
        written.append("/".join(CURVES_PNG))
    curves = {}
    for variant, label in (("fp32", "FP32"), ("ptq_int8", "PTQ INT8"), ("qat_int8", "QAT INT8")):
        data = _json(export_steps.onnx_evaluation_dir(ctx, variant) / "curves.json")
        if data:
            curves[label] = data["classes"]
    if curves:
        figures.plot_pr_comparison(ctx.path(*PR_PNG), curves)
        written.append("/".join(PR_PNG))
    return written


def _workflow_rows(ctx):
    rows = [
        ("FP32, trained", "Keras", keras_results(ctx, steps.FP32)),
        ("FP32, pruned + retrained", "Keras", keras_results(ctx, steps.RETRAIN)),
        ("QAT (fake quantization)", "Keras", keras_results(ctx, steps.QAT)),
    ]
    rows += [
        (title, "ONNX Runtime", onnx_results(ctx, variant))
        for variant, (_, _, title) in export_steps.VARIANTS.items()
    ]
    return rows


def _epochs(count):
    return f"{count} epoch{'' if count == 1 else 's'}"


def _intro(ctx):
    s = ctx.settings
    pruning = _json(ctx.path(*steps.PRUNED_MODEL).with_suffix(".pruning.json")) or {}
    threshold = pruning.get("settings", {}).get("pruning_threshold")
    chosen = "" if threshold is None else f", -pth {threshold:g}"
    return (
        f"TAO's DetectNet_v2 workflow on the vendored aerial tree tiles (examples/trees: "
        f"84 training and 10 validation tiles, class 'tree'), '{s.name}' settings: "
        f"ResNet-{s.num_layers} at {s.image_size[0]}x{s.image_size[1]}; FP32 training "
        f"{_epochs(s.fp32_epochs)} -> prune to at most {100 * s.prune_target_ratio:.0f}% of "
        f"the conv weights{chosen} -> retrain {_epochs(s.retrain_epochs)} -> QAT retrain "
        f"{_epochs(s.qat_epochs)} -> export (PTQ: entropy calibration on "
        f"{s.calibration_batches * s.batch_size} training images; QAT: learned ranges) -> "
        "evaluation of every exported model in ONNX Runtime -> benchmark. Seeds are fixed "
        "(random_seed 42): a re-run reproduces the numbers within run-to-run noise."
    )


def build_blocks(ctx, step_entries, missing, figure_paths):
    accuracy, said, speed, trt, sizes = main_tables(ctx)
    blocks = [
        Heading("qat demo: post-training quantization vs quantization-aware training", 1),
        Paragraph(_intro(ctx)),
        Heading("Conclusions (computed from Table 1)"),
        BulletList(said),
        Heading("Accuracy: FP32 vs PTQ INT8 vs QAT INT8"),
        accuracy,
        Paragraph(
            "The FP32 and PTQ INT8 models are the same pruned, retrained network; the "
            "QAT INT8 model is that network after the QAT retraining. The row 'QAT "
            "model, ranges removed' below shows what the QAT retraining alone did."
        ),
        tables.workflow_table(_workflow_rows(ctx)),
        Heading("Speed and size"),
        speed,
        Paragraph(
            "The TensorRT-style Q/DQ model quantizes only conv inputs, so ONNX Runtime "
            "runs float convs on dequantized values (no faster on a CPU; it is the model "
            "for TensorRT). The CPU INT8 model folds BN and runs integer kernels. The QAT "
            "files have the same graph structure as the PTQ ones, so the same speed."
        ),
    ]
    if isinstance(trt, dict):
        blocks.append(Paragraph(f"TensorRT FP16 vs INT8: not measured: {trt['skipped']}"))
    else:
        blocks.append(trt)
    env = (_json(benchmark.benchmark_path(ctx)) or {}).get("environment")
    if env:
        blocks.append(
            Paragraph(
                f"Measured with ONNX Runtime {env['onnxruntime']} on "
                f"{env['cpu_count']} CPU cores ({env['processor']}), 1-minute "
                f"load average {env['load_average_1min']:.1f} at the start "
                "(a shared machine slows every figure alike)."
            )
        )
    blocks.append(sizes)
    blocks += [
        Heading("Training curves"),
        *_pictures(
            figure_paths,
            CURVES_PNG,
            "Training loss and validation mAP per epoch (from each training's status.json)",
        ),
    ]
    blocks += [
        Heading("Precision / recall"),
        *_pictures(
            figure_paths,
            PR_PNG,
            "Interpolated precision/recall of the exported models on the validation tiles",
        ),
    ]
    blocks += _picture_blocks(ctx)
    blocks += [Heading("Step times"), tables.step_time_table(step_entries)]
    if missing:
        blocks += [Heading("Not run"), BulletList(missing)]
    blocks += [
        Heading("Files"),
        BulletList(
            [
                "specs/: every spec the demo ran (re-run any step by hand with the qat commands)",
                "train_fp32/, retrain_pruned/, retrain_qat/: qat train results (weights/, "
                "status.json, TensorBoard events) and evaluation/",
                "prune/: pruned model and its .pruning.json report",
                "export/ptq/, export/qat/: ONNX, Q/DQ ONNX, TensorRT calibration cache (.cal.bin), "
                "tensor scales (.cal.json), CPU INT8 ONNX, DeepStream nvinfer_config.txt",
                "eval_onnx/<model>/: qat evaluate results of every exported model",
                "benchmark/benchmark.json, inference/<model>/labels/, figures/",
            ]
        ),
    ]
    return blocks


def _pictures(figure_paths, parts, caption):
    relative = "/".join(parts)
    return (
        [Picture(relative, caption)]
        if relative in figure_paths
        else [Paragraph("(not drawn: its data is missing)")]
    )


def _picture_blocks(ctx):
    summary = _json(pictures.summary_path(ctx))
    if not summary:
        return []
    totals = summary["totals"]
    count = ", ".join(
        f"{label}: {totals[v][0]} TP / {totals[v][1]} FP / {totals[v][2]} missed"
        for v, label in pictures.PANELS
        if v in totals
    )
    blocks = [
        Heading("Detections side by side (PTQ INT8 vs QAT INT8)"),
        Paragraph(
            f"Same validation tiles, one confidence threshold for every panel: "
            f"{summary['confidence_threshold']:.3f} (the FP32 model's best-F1 "
            f"confidence), IoU >= {summary['iou_threshold']:g} to match. Green: "
            "true positive, red: spurious box, yellow (thin): missed tree. Tiles "
            "shown: where PTQ and QAT INT8 differ most, among the tiles with at least "
            "the median number of trees. All tiles: " + count
        ),
    ]
    relative = pictures.pictures_dir(ctx).relative_to(ctx.workdir)
    blocks += [
        Picture(f"{relative.as_posix()}/{name}", f"Tile {Path(name).stem}")
        for name in summary["pictures"]
    ]
    return blocks


def write_report(ctx, step_entries, missing=()):
    """Write figures, report.md and report.html; return (md path, html path, terminal text)."""
    figure_paths = write_figures(ctx)
    blocks = build_blocks(ctx, step_entries, list(missing), figure_paths)
    md, page = ctx.path(REPORT_MD), ctx.path(REPORT_HTML)
    atomic_write_text(md, to_markdown(blocks))
    atomic_write_text(page, to_html(blocks, "qat demo report"))
    return md, page, terminal_summary(ctx)


def terminal_summary(ctx):
    """Tables 1 and 2 and the conclusions as plain text."""
    accuracy, said, speed, trt, sizes = main_tables(ctx)
    parts = [accuracy.caption, accuracy.text(), "", *said, "", speed.caption, speed.text()]
    parts += (
        [f"TensorRT FP16 vs INT8: not measured: {trt['skipped']}"]
        if isinstance(trt, dict)
        else [trt.caption, trt.text()]
    )
    parts += ["", sizes.caption, sizes.text()]
    return "\n".join(parts)


def step_entries(ctx, work_steps):
    """(step, title, marker seconds or None, status in this run) of ``work_steps``."""
    statuses = {o.step.name: o.status for o in ctx.cache.get("outcomes", [])}
    entries = []
    for step in work_steps:
        marker = ctx.read_marker(step.name)
        entries.append(
            (
                step.name,
                step.title,
                marker["seconds"] if marker else None,
                statuses.get(step.name, ""),
            )
        )
    return entries


def finish_report(ctx, work_steps, missing):
    """After the steps: the report paths and terminal text; writes a partial report (listing
    ``missing``) when the report step could not run."""
    md, page = ctx.path(REPORT_MD), ctx.path(REPORT_HTML)
    if missing or not md.is_file():
        return write_report(ctx, step_entries(ctx, work_steps), missing)
    return md, page, terminal_summary(ctx)


def report_step(work_steps):
    """The report as a step (re-drawn when any step it reads was re-run)."""

    def run(ctx):
        write_report(ctx, step_entries(ctx, work_steps))

    def check(ctx):
        text = ctx.path(REPORT_MD).read_text() if ctx.path(REPORT_MD).is_file() else ""
        return None if "Table 1" in text and "Table 2" in text else f"{REPORT_MD} incomplete"

    return Step(
        "report",
        "Write report.md / report.html (tables, curves, pictures)",
        run,
        lambda ctx: [
            ctx.path(REPORT_MD),
            ctx.path(REPORT_HTML),
            *[ctx.path(*p) for p in (CURVES_PNG, PR_PNG)],
        ],
        check,
        tuple(step.name for step in work_steps),
    )

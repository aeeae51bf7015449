"""The demo's export side: ``qat export`` of the pruned FP32 model (PTQ INT8) and of the QAT
model (QAT INT8), each with ``--target onnxruntime`` so it also writes the CPU INT8 model, and
``qat evaluate`` of every exported model in ONNX Runtime (TAO reference §8; docs/export.md,
docs/calibration.md).

Workdir layout::

    export/ptq/model.onnx           FP32 ONNX of the pruned, retrained model
    export/ptq/model.qdq.onnx       PTQ INT8: entropy calibration -> Q/DQ (TensorRT, ORT)
    export/ptq/model.cal.bin/.json  TensorRT calibration cache and tensor scales
    export/ptq/model.cpu_int8.onnx  CPU INT8 (ONNX Runtime integer kernels) from those scales
    export/qat/...                  the same files from the QAT model and its learned ranges
                                    (CPU INT8: the tensors QAT has no range for calibrated)
    eval_onnx/<variant>/            qat evaluate results of each ONNX model
"""

import json
import logging

from tao_qat.common.fileio import atomic_write_text
from tao_qat.demo import steps as train_steps
from tao_qat.demo.runner import Step, StepUnavailable, check_json, check_onnx, first_problem

logger = logging.getLogger(__name__)

# variant -> (export folder, file name, title); "fp32" is the float ONNX of the PTQ export.
VARIANTS = {
    "fp32": ("ptq", "model.onnx", "FP32 (ONNX)"),
    "ptq_int8": ("ptq", "model.qdq.onnx", "PTQ INT8 (Q/DQ)"),
    "qat_int8": ("qat", "model.qdq.onnx", "QAT INT8 (Q/DQ)"),
    "qat_fp32": ("qat", "model.onnx", "QAT model, ranges removed (FP32 ONNX)"),
    "ptq_cpu_int8": ("ptq", "model.cpu_int8.onnx", "PTQ CPU INT8 (ORT integer kernels)"),
    "qat_cpu_int8": ("qat", "model.cpu_int8.onnx", "QAT CPU INT8 (ORT integer kernels)"),
}
EXPORT_SOURCES = {"ptq": train_steps.RETRAIN, "qat": train_steps.QAT}


def variant_path(ctx, variant):
    folder, name, _ = VARIANTS[variant]
    return ctx.path("export", folder, name)


def export_files(ctx, kind):
    """Every file the export step ``kind`` ("ptq" / "qat") writes."""
    folder = ctx.path("export", kind)
    names = (
        "model.onnx",
        "model.qdq.onnx",
        "model.cal.bin",
        "model.cal.json",
        "model.cpu_int8.onnx",
        "nvinfer_config.txt",
        "labels.txt",
        "export.json",
    )
    return [folder / name for name in names]


def export_check(kind):
    def check(ctx):
        folder = ctx.path("export", kind)
        onnx_files = [folder / n for n in ("model.onnx", "model.qdq.onnx", "model.cpu_int8.onnx")]
        return first_problem(
            check_json(folder / "model.cal.json", "tensor_scales"),
            lambda: check_json(folder / "export.json", "tensors", "calibration"),
            lambda: _cache_ok(folder / "model.cal.bin"),
            *[(lambda p=p: check_onnx(p)) for p in onnx_files],
        )

    return check


def _cache_ok(path):
    from tao_qat.common.errors import QatError
    from tao_qat.export.calibration_cache import read_calibration_cache

    try:
        _, amax = read_calibration_cache(path)
    except (QatError, OSError) as exc:
        return f"{path}: unreadable calibration cache ({exc})"
    return None if amax else f"{path}: empty calibration cache"


def export_run(kind):
    """``qat export --data_type int8 --target onnxruntime --gen_ds_config`` of the model: the
    TensorRT files and the CPU INT8 model from the same PTQ or QAT scales (QAT: the tensors it
    has no range for are calibrated on the spec's training images)."""

    def run(ctx):
        from tao_qat.export.run_export import ExportOptions, run_export

        source = EXPORT_SOURCES[kind]
        folder = ctx.path("export", kind)
        result = run_export(
            ExportOptions(
                model_path=str(train_steps.model_path(ctx, source)),
                output_path=str(folder / "model.onnx"),
                spec_path=str(train_steps.spec_path(ctx, source)),
                data_type="int8",
                target="onnxruntime",
                cal_json_file=str(folder / "model.cal.json"),
                batches=ctx.settings.calibration_batches,
                batch_size=ctx.settings.batch_size,
                gen_ds_config=True,
                force=True,
                echo=ctx.echo,
            )
        )
        if kind == "qat" and not result.qat:
            raise StepUnavailable(f"{train_steps.model_path(ctx, source)} is not a QAT model")
        qat_ranges = result.scales.source == "qat"
        summary = {
            "tensors": len(result.tensor_amax),
            "activation_qdq": len(result.activation_amax),
            "weight_qdq": len(result.weight_amax),
            "calibration": "QAT ranges" if qat_ranges else result.calibration,
            "cpu_int8_calibrated_tensors": len(result.scales.cpu_calibrated),
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
        }
        atomic_write_text(folder / "export.json", json.dumps(summary, indent=2) + "\n")
        return summary

    return run


def export_step(kind, title):
    return Step(
        f"export_{kind}",
        title,
        export_run(kind),
        lambda ctx: export_files(ctx, kind),
        export_check(kind),
        (EXPORT_SOURCES[kind],),
    )


# ---- evaluation of the exported models in ONNX Runtime -------------------------------------
def onnx_evaluation_dir(ctx, variant):
    return ctx.path("eval_onnx", variant)


def onnx_evaluate_step(variant):
    kind = VARIANTS[variant][0]

    def run(ctx):
        spec = train_steps.spec_path(ctx, EXPORT_SOURCES[kind])
        return train_steps.run_evaluation(
            ctx, spec, variant_path(ctx, variant), onnx_evaluation_dir(ctx, variant)
        )

    return Step(
        f"evaluate_{variant}",
        f"Evaluate {VARIANTS[variant][2]} in ONNX Runtime",
        run,
        lambda ctx: train_steps.evaluation_outputs(ctx, onnx_evaluation_dir(ctx, variant)),
        lambda ctx: train_steps.evaluation_check(onnx_evaluation_dir(ctx, variant)),
        (f"export_{kind}",),
    )


def export_steps():
    """Export and ONNX Runtime evaluation steps, in order."""
    return [
        export_step(
            "ptq",
            "Export FP32 ONNX + PTQ INT8 (qat export --data_type int8, entropy "
            "calibration) + CPU INT8",
        ),
        export_step("qat", "Export QAT INT8 (qat export of the QAT model) + CPU INT8"),
        *[onnx_evaluate_step(variant) for variant in VARIANTS],
    ]

"""The pictures step: ``qat inference`` of the FP32, PTQ INT8 and QAT INT8 ONNX models on the
validation tiles, then side-by-side pictures of the tiles where PTQ and QAT differ most.

All panels use one confidence threshold: the FP32 model's best-F1 confidence on the validation
set (what a deployment tuned on the FP32 model would keep), so spurious and missed boxes of the
INT8 models show as they would in that deployment.
"""

import json
import logging

import numpy as np

from tao_qat.common.fileio import atomic_write_text
from tao_qat.demo import export_steps, figures, specs, steps
from tao_qat.demo.runner import Step, check_image, check_json, first_problem

logger = logging.getLogger(__name__)

PANELS = (("fp32", "FP32"), ("ptq_int8", "PTQ INT8"), ("qat_int8", "QAT INT8"))
DEFAULT_THRESHOLD = 0.5


def pictures_dir(ctx):
    return ctx.path("figures", "pictures")


def summary_path(ctx):
    return pictures_dir(ctx) / "pictures.json"


def run_inferences(ctx):
    """``qat inference`` of each panel's model on the validation tiles (KITTI dumps)."""
    from tao_qat.inference.run_inference import InferenceOptions, run_inference

    spec = specs.inference_spec(
        steps.experiment_of(ctx, steps.RETRAIN), export_steps.variant_path(ctx, "fp32")
    )
    spec_file = specs.write_spec(
        spec,
        ctx.path("specs", "inference.txt"),
        header="qat demo: qat inference of the exported models",
    )
    for variant, _ in PANELS:
        run_inference(
            InferenceOptions(
                spec_path=str(spec_file),
                image_path=str(specs.image_dir("val")),
                results_dir=str(ctx.path("inference", variant)),
                model_path=str(export_steps.variant_path(ctx, variant)),
                force=True,
                echo=ctx.echo,
            )
        )


def confidence_threshold(ctx):
    """The FP32 ONNX model's best-F1 confidence (mean over classes), or 0.5 without one."""
    path = export_steps.onnx_evaluation_dir(ctx, "fp32") / "results.json"
    classes = json.loads(path.read_text())["classes"].values()
    values = [c["best_f1_confidence"] for c in classes if c.get("best_f1_confidence")]
    return float(np.mean(values)) if values else DEFAULT_THRESHOLD


def _ground_truth(stem, class_names):
    from tao_qat.data.kitti import read_kitti_labels

    objects = read_kitti_labels(specs.label_dir("val") / f"{stem}.txt")
    wanted = {name.lower() for name in class_names}
    return np.array([o.box for o in objects if o.class_name in wanted], np.float64).reshape(-1, 4)


def _detections(ctx, variant, stem, threshold):
    from tao_qat.data.kitti import read_kitti_predictions

    found = read_kitti_predictions(ctx.path("inference", variant, "labels", f"{stem}.txt"))
    keep = found.scores >= threshold
    return found.boxes[keep], found.scores[keep]


def tile_counts(ctx, threshold, iou_threshold, class_names):
    """{tile stem: {variant: (TP, FP, missed)}} plus the matches needed to draw them."""
    counts, matches = {}, {}
    for image in sorted(specs.image_dir("val").glob("*.jpg")):
        gt = _ground_truth(image.stem, class_names)
        counts[image.stem], matches[image.stem] = {}, {}
        for variant, _ in PANELS:
            boxes, scores = _detections(ctx, variant, image.stem, threshold)
            tp, matched = figures.match_image(boxes, scores, gt, iou_threshold)
            counts[image.stem][variant] = (int(tp.sum()), int((~tp).sum()), int((~matched).sum()))
            matches[image.stem][variant] = (boxes, tp, gt, matched)
    return counts, matches


def choose_tiles(counts, number):
    """The ``number`` tiles where PTQ and QAT INT8 differ most (|dTP| + |dFP|), among the tiles
    with at least the median number of trees (dense tiles show more); ties by name."""

    def difference(stem):
        (tp_p, fp_p, _), (tp_q, fp_q, _) = counts[stem]["ptq_int8"], counts[stem]["qat_int8"]
        return abs(tp_p - tp_q) + abs(fp_p - fp_q)

    def trees(stem):
        tp, _, missed = counts[stem]["fp32"]
        return tp + missed

    median = float(np.median([trees(stem) for stem in counts])) if counts else 0.0
    dense = [stem for stem in counts if trees(stem) >= median]
    return sorted(dense, key=lambda stem: (-difference(stem), stem))[:number]


def pictures_run(ctx):
    run_inferences(ctx)
    experiment = steps.experiment_of(ctx, steps.RETRAIN)
    class_names = [c.name for c in experiment.cost_function_config.target_classes]
    overlaps = experiment.evaluation_config.minimum_detection_ground_truth_overlap
    iou = float(min((overlaps.get(n, 0.5) for n in class_names), default=0.5))
    threshold = confidence_threshold(ctx)
    counts, matches = tile_counts(ctx, threshold, iou, class_names)
    chosen = choose_tiles(counts, ctx.settings.num_pictures)
    written = []
    for stem in chosen:
        panels = []
        for variant, label in PANELS:
            tp, fp, missed = counts[stem][variant]
            boxes, hits, gt, matched = matches[stem][variant]
            panels.append((f"{label}: {tp} TP, {fp} FP, {missed} missed", boxes, hits, gt, matched))
        path = pictures_dir(ctx) / f"{stem}.png"
        figures.comparison_picture(path, specs.image_dir("val") / f"{stem}.jpg", panels)
        written.append(path.name)
    totals = {
        variant: [int(sum(counts[s][variant][i] for s in counts)) for i in range(3)]
        for variant, _ in PANELS
    }
    summary = {
        "confidence_threshold": threshold,
        "iou_threshold": iou,
        "pictures": written,
        "tiles": counts,
        "totals": totals,
    }
    atomic_write_text(summary_path(ctx), json.dumps(summary, indent=2) + "\n")
    return {"pictures": written, "confidence_threshold": threshold}


def pictures_outputs(ctx):
    try:
        names = json.loads(summary_path(ctx).read_text())["pictures"]
    except (OSError, ValueError, KeyError):
        names = []
    return [summary_path(ctx), *[pictures_dir(ctx) / name for name in names]]


def pictures_check(ctx):
    problem = check_json(summary_path(ctx), "pictures", "confidence_threshold", "totals")
    if problem:
        return problem
    names = json.loads(summary_path(ctx).read_text())["pictures"]
    if not names:
        return f"{summary_path(ctx)}: no pictures"
    return first_problem(*[(lambda n=n: check_image(pictures_dir(ctx) / n)) for n in names])


def pictures_step():
    return Step(
        "pictures",
        "Draw PTQ vs QAT INT8 detections side by side (qat inference)",
        pictures_run,
        pictures_outputs,
        pictures_check,
        ("export_ptq", "export_qat", "evaluate_fp32"),
    )

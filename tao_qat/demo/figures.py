"""The demo's pictures: training curves from status.json, precision/recall curves of the
exported models on one plot, and side-by-side detections of the same validation tiles
(TAO's QAT article, Figures 1 and 3). matplotlib through its Agg canvas (no pyplot)."""

import numpy as np
from PIL import Image, ImageDraw

from tao_qat.common.fileio import atomic_path
from tao_qat.evaluation.average_precision import interpolated_precision
from tao_qat.postprocessing.boxes import pairwise_iou

TP_COLOR, FP_COLOR, MISSED_COLOR = (0, 220, 0), (255, 40, 40), (255, 230, 0)


def _figure(rows=1, columns=1, size=(6.4, 4.8), sharex=False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False, sharex=sharex)


def _save(figure, path):
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def plot_training_curves(path, runs):
    """Loss and validation mAP per epoch of consecutive trainings on one epoch axis.

    Args:
        runs: list of (label, status records) in training order; records are status.json
            dicts (epoch records carry ``epoch``, ``loss`` and, on validation epochs,
            ``mean_average_precision`` as a fraction).
    """
    figure, axes = _figure(2, 1, size=(7.5, 6.0), sharex=True)
    loss_axes, map_axes = axes[0, 0], axes[1, 0]
    offset = 0
    for label, records in runs:
        epochs = [r for r in records if r.get("epoch") is not None and r.get("loss") is not None]
        if not epochs:
            continue
        x = [offset + r["epoch"] for r in epochs]
        loss_axes.plot(x, [r["loss"] for r in epochs], marker=".", label=label)
        validated = [r for r in epochs if r.get("mean_average_precision") is not None]
        map_axes.plot(
            [offset + r["epoch"] for r in validated],
            [100 * r["mean_average_precision"] for r in validated],
            marker="o",
            label=label,
        )
        offset = max(x)
        loss_axes.axvline(offset + 0.5, color="#999", linewidth=0.6, linestyle=":")
    loss_axes.set_yscale("log")
    loss_axes.set_ylabel("training loss (log)")
    loss_axes.set_title("Training curves (epochs of the three trainings, end to end)")
    map_axes.set_ylabel("validation mAP (%)")
    map_axes.set_xlabel("epoch")
    for ax in (loss_axes, map_axes):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return _save(figure, path)


def plot_pr_comparison(path, curves):
    """Interpolated precision/recall curves of several models on one plot per class.

    Args:
        curves: {model label: {class: {"precision": [...], "recall": [...],
            "average_precision": float}}} (``curves.json`` of each evaluation).
    """
    classes = sorted({name for per_model in curves.values() for name in per_model})
    figure, axes = _figure(1, max(1, len(classes)), size=(6.4 * max(1, len(classes)), 4.8))
    for ax, name in zip(axes[0], classes, strict=False):
        for label, per_model in curves.items():
            curve = per_model.get(name)
            if not curve or not curve["precision"]:
                ax.plot([], [], label=f"{label} (no detections)")
                continue
            precision = interpolated_precision(curve["precision"])
            recall = np.concatenate([[0.0], curve["recall"]])
            ax.plot(
                recall,
                np.concatenate([precision[:1], precision]),
                drawstyle="steps-pre",
                label=f"{label} (AP {100 * curve['average_precision']:.1f}%)",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision (interpolated)")
        ax.set_title(f"Precision / recall, class '{name}' (validation tiles)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    return _save(figure, path)


def match_image(boxes, scores, gt_boxes, iou_threshold):
    """TAO's greedy matching (``evaluation.matching.match_class``, +1 px IoU, rounded boxes)
    of one image's detections to its ground truth.

    Args:
        boxes: float [K, 4], scores: float [K]; gt_boxes: float [N, 4]; all (x1, y1, x2, y2)
            in the same pixels.
    Returns:
        (true_positive bool [K], matched bool [N]); a true positive matched the ground truth
        it overlaps most (the first on ties).
    """
    from tao_qat.evaluation.matching import IOU_BORDER, match_class, round_boxes

    boxes = round_boxes(boxes).reshape(-1, 4)
    gt_boxes = round_boxes(gt_boxes).reshape(-1, 4)
    one_image = np.zeros(len(boxes), np.int64), np.zeros(len(gt_boxes), np.int64)
    order, hits = match_class(
        one_image[0], np.asarray(scores), boxes, one_image[1], gt_boxes, iou_threshold
    )
    true_positive = np.zeros(len(boxes), bool)
    true_positive[order] = hits
    matched = np.zeros(len(gt_boxes), bool)
    if true_positive.any():
        iou = pairwise_iou(boxes[true_positive], gt_boxes, border=IOU_BORDER)
        matched[np.argmax(iou, axis=1)] = True
    return true_positive, matched


def draw_panel(image, boxes, true_positive, gt_boxes, matched, line_width=2):
    """Copy of ``image`` with true positives green, false positives red and missed ground
    truth yellow (thin)."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    for box, hit in zip(gt_boxes, matched, strict=True):
        if not hit:
            draw.rectangle([float(v) for v in box], outline=MISSED_COLOR, width=1)
    for box, good in zip(boxes, true_positive, strict=True):
        draw.rectangle(
            [float(v) for v in box], outline=TP_COLOR if good else FP_COLOR, width=line_width
        )
    return canvas


def comparison_picture(path, image_path, panels, scale=1):
    """Write one PNG: the same tile once per model, side by side, with counts in the titles.

    Args:
        image_path: the tile; panels: list of (title, boxes [K, 4], true_positive [K],
            gt_boxes [N, 4], matched [N]) in the tile's pixels; scale: enlargement factor.
    """
    from tao_qat.inference.overlay import side_by_side

    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    drawn, titles = [], []
    for title, boxes, true_positive, gt_boxes, matched in panels:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * scale
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4) * scale
        drawn.append(draw_panel(image, boxes, true_positive, gt_boxes, matched))
        titles.append(title)
    sheet = side_by_side(drawn, titles)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path

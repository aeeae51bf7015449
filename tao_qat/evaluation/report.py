"""Evaluation reports: per-class table (tabulate), ``results.json`` and a precision/recall PNG.

Outputs are written atomically and refuse to overwrite an existing file unless ``force``.
matplotlib is imported lazily (about 1 s) and used through its object API with the Agg canvas,
so no global backend is switched and no display is needed.
"""

import json

import numpy as np
from tabulate import tabulate

from tao_qat.common.fileio import atomic_path, atomic_write_text, check_writable_output
from tao_qat.evaluation.average_precision import interpolated_precision

TABLE_HEADERS = ("class", "AP (%)", "#GT", "#det", "TP", "FP", "max recall (%)", "best F1 (%)")
AP_MODE_TITLES = {
    "sample": "VOC2007 11-point",
    "integrate": "VOC2010+ area",
    "integrate_tao": "TAO INTEGRATE",
}


def format_table(result, table_format="pretty"):
    """Per-class table (output class order) followed by the mAP line, as one string."""
    rows = []
    for c in result.classes:
        rows.append(
            (
                c.name,
                f"{100 * c.average_precision:.2f}",
                c.num_ground_truth,
                c.num_detections,
                c.num_true_positives,
                c.num_false_positives,
                f"{100 * c.max_recall:.2f}",
                f"{100 * c.best_f1()[0]:.2f}",
            )
        )
    table = tabulate(
        rows,
        headers=TABLE_HEADERS,
        tablefmt=table_format,
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(TABLE_HEADERS) - 1),
    )
    mode = AP_MODE_TITLES.get(result.ap_mode, result.ap_mode)
    mean_ap = 100 * result.mean_average_precision
    return f"{table}\nMean average precision (in %): {mean_ap:.4f} ({mode})"


def write_results_json(path, result, extra=None, force=False):
    """Write ``result.summary()`` (plus ``extra`` top-level keys) as indented JSON."""
    path = check_writable_output(path, force)
    payload = result.summary()
    payload.update(extra or {})
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json) + "\n")
    return path


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def plot_precision_recall(path, result, title=None, force=False, dpi=120):
    """Save a PNG with one interpolated precision/recall curve per class, AP in the legend.

    The drawn curve is the one AP integrates: precision made monotone from the right, as a
    step function of recall starting at recall 0.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = check_writable_output(path, force)
    figure = Figure(figsize=(6.4, 4.8), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for c in result.classes:
        label = f"{c.name} (AP {100 * c.average_precision:.1f}%, {c.num_ground_truth} GT)"
        if len(c.precision) and c.num_ground_truth:
            envelope = interpolated_precision(c.precision)
            recall = np.concatenate([[0.0], c.recall])
            precision = np.concatenate([envelope[:1], envelope])
            axes.plot(recall, precision, drawstyle="steps-pre", linewidth=1.6, label=label)
        else:
            axes.plot([], [], label=label)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision (interpolated)")
    mode = AP_MODE_TITLES.get(result.ap_mode, result.ap_mode)
    axes.set_title(title or f"mAP {100 * result.mean_average_precision:.2f}% ({mode})")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path

"""The demo's tables and conclusions from plain numbers (TAO's QAT article, Tables 1 and 2).

Pure functions over dicts read from the workdir's JSON files, so every number and sentence of
the report can be tested by hand. Accuracy values are fractions in [0, 1] and shown in %.
"""

import math

from tao_qat.demo.document import Table

NA = "n/a"
MIN_USEFUL_MAP = 0.05  # below this FP32 mAP the model is untrained: no conclusion is drawn


def percent(value, digits=2):
    return NA if value is None else f"{100 * value:.{digits}f}"


def points(delta):
    """A signed mAP difference in points: +1.23 / -0.40."""
    return NA if delta is None else f"{round(100 * delta, 2) + 0.0:+.2f}"


def difference(a, b):
    return None if a is None or b is None else a - b


def per_class_ap(results):
    """{class: AP} of a results.json dict (None -> {})."""
    if not results:
        return {}
    return {name: c["average_precision"] for name, c in results["classes"].items()}


def accuracy_table(fp32, ptq, qat):
    """Table 1: per-class AP and mAP of the FP32, PTQ INT8 and QAT INT8 models.

    Args:
        fp32, ptq, qat: results.json dicts (``mean_average_precision``, ``classes``) or None.
    """

    def row(label, a, b, c):
        differences = (difference(b, a), difference(c, a), difference(c, b))
        return [label, percent(a), percent(b), percent(c), *(points(d) for d in differences)]

    aps = [per_class_ap(r) for r in (fp32, ptq, qat)]
    classes = list(dict.fromkeys(name for ap in aps for name in ap))
    rows = [row(name, *(ap.get(name) for ap in aps)) for name in classes]
    means = [r["mean_average_precision"] if r else None for r in (fp32, ptq, qat)]
    rows.append(row("mean (mAP)", *means))
    return Table(
        [
            "class",
            "FP32 AP (%)",
            "PTQ INT8 AP (%)",
            "QAT INT8 AP (%)",
            "PTQ - FP32",
            "QAT - FP32",
            "QAT - PTQ",
        ],
        rows,
        caption="Table 1: accuracy of the exported models in ONNX Runtime "
        "(validation tiles; differences in mAP points)",
    )


def conclusions(fp32_map, ptq_map, qat_map, noise_points):
    """Sentences comparing the three mAPs (fractions); ``noise_points`` is the size of a
    difference (in points) below which two models are called equal."""
    if None in (fp32_map, ptq_map, qat_map):
        return ["Not every model was evaluated: no accuracy conclusion can be drawn yet."]
    values = (fp32_map, ptq_map, qat_map)
    if not all(math.isfinite(v) for v in values):
        return ["Some mAP values are not finite: no accuracy conclusion can be drawn."]
    noise = noise_points / 100
    if fp32_map < MIN_USEFUL_MAP:
        return [
            f"The FP32 model finds almost nothing (mAP {percent(fp32_map)}%): too little "
            "training to compare quantization methods (expected with --quick; the default "
            "settings train long enough)."
        ]

    def compare(delta, subject, reference):
        size = f"{abs(100 * delta):.2f} points"
        if abs(delta) < noise:
            return (
                f"{subject} is within {noise_points:g} point of {reference} "
                f"({points(delta)}): no measurable difference on this data."
            )
        verb = "loses" if delta < 0 else "gains"
        return f"{subject} {verb} {size} of mAP against {reference} ({points(delta)})."

    ptq_loss = ptq_map - fp32_map
    sentences = [
        compare(ptq_loss, "PTQ INT8", "FP32"),
        compare(qat_map - fp32_map, "QAT INT8", "FP32"),
        compare(qat_map - ptq_map, "QAT INT8", "PTQ INT8"),
    ]
    if ptq_loss > -noise:
        sentences.append(
            "On this data PTQ does not lose accuracy, so QAT has nothing to "
            "recover here; TAO's article reports PTQ losses on other data sets."
        )
    elif qat_map - ptq_map >= noise:
        recovered = (qat_map - ptq_map) / (fp32_map - ptq_map)
        sentences.append(
            f"QAT recovers {100 * min(recovered, 9.99):.0f}% of the accuracy PTQ loses."
        )
    else:
        sentences.append("PTQ loses accuracy and QAT does not recover it on this data.")
    return sentences


def workflow_table(rows):
    """Accuracy along the workflow. rows: list of (model, engine, results dict or None)."""
    body = []
    for model, engine, results in rows:
        mean = results["mean_average_precision"] if results else None
        ms = results.get("metadata", {}).get("median_inference_seconds") if results else None
        body.append([model, engine, percent(mean), NA if ms is None else f"{1000 * ms:.1f}"])
    return Table(
        ["model", "engine", "mAP (%)", "median ms / image"],
        body,
        caption="Accuracy along the workflow (every evaluated model)",
        align=("left", "left", "right", "right"),
    )


def throughput_table(onnxruntime, labels, batch_sizes):
    """Table 2a: ONNX Runtime CPU throughput.

    Args:
        onnxruntime: {variant: {str(batch): {"images_per_second", "median_ms"}}}.
        labels: {variant: row title}; the first variant is the speed-up reference.
        batch_sizes: batch sizes (columns).
    """
    variants = [v for v in labels if v in onnxruntime]
    reference = onnxruntime.get(variants[0], {}) if variants else {}
    headers = ["model (ONNX Runtime, CPU)"]
    for batch in batch_sizes:
        headers += [f"images/s (batch {batch})", f"speed-up vs FP32 (batch {batch})"]
    rows = []
    for variant in variants:
        row = [labels[variant]]
        for batch in batch_sizes:
            timing = onnxruntime[variant].get(str(batch))
            base = reference.get(str(batch))
            if timing is None:
                row += [NA, NA]
                continue
            speed = timing["images_per_second"]
            ratio = speed / base["images_per_second"] if base else None
            row += [f"{speed:.1f}", NA if ratio is None else f"{ratio:.2f}x"]
        rows.append(row)
    return Table(
        headers,
        rows,
        caption="Table 2: FP32 vs INT8 throughput, ONNX Runtime on the CPU (median of timed runs)",
    )


def tensorrt_rows(tensorrt, batch_sizes):
    """Table rows of TensorRT FP16 vs INT8, or None when it was skipped."""
    if not tensorrt or "skipped" in tensorrt:
        return None
    rows = []
    for data_type in ("fp16", "int8"):
        timings = tensorrt.get(data_type, {})
        rows.append(
            [f"TensorRT {data_type.upper()}"]
            + [
                f"{timings[str(b)]['images_per_second']:.1f}" if str(b) in timings else NA
                for b in batch_sizes
            ]
        )
    return Table(
        ["engine"] + [f"images/s (batch {b})" for b in batch_sizes],
        rows,
        caption="TensorRT FP16 vs INT8 (GPU)",
    )


def mib(size):
    return NA if size is None else f"{size / 2**20:.2f}"


def size_table(pruning, files):
    """Table 2b: parameters, FLOPs and file sizes before / after pruning.

    Args:
        pruning: the ``.pruning.json`` dict (``parameters``, ``flops`` before / after) or None.
        files: list of (model, stage "before"/"after", file label, size in bytes or None).
    """
    rows = []
    for model, stage, label, size in files:
        params = pruning["parameters"][stage] if pruning else None
        flops = pruning["flops"][stage] if pruning else None
        rows.append(
            [
                model,
                NA if params is None else f"{params:,}",
                NA if flops is None else f"{flops / 1e9:.3f}",
                label,
                mib(size),
            ]
        )
    return Table(
        ["model", "parameters", "GFLOPs", "file", "size (MiB)"],
        rows,
        caption="Model size before and after pruning (parameters as Keras counts "
        "them, BN statistics included; FLOPs = 2 x conv MACs)",
        align=("left", "right", "right", "left", "right"),
    )


def step_time_table(entries):
    """Measured step times. entries: list of (step, title, seconds or None, this run's status)."""
    rows = [
        [name, title, NA if seconds is None else f"{seconds:.1f}", status]
        for name, title, seconds, status in entries
    ]
    total = sum(seconds or 0.0 for _, _, seconds, _ in entries)
    rows.append(["total", "", f"{total:.1f}", ""])
    return Table(
        ["step", "what", "seconds", "this run"],
        rows,
        caption="Measured step times (from each step's marker; a skipped step keeps "
        "the time of the run that did it)",
        align=("left", "left", "right", "left"),
    )

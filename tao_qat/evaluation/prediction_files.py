"""Score a folder of KITTI prediction files against a folder of KITTI labels (TAO §9 dumps).

Pairing is by file stem (``labels/<stem>.txt`` <-> ``predictions/<stem>.txt``). The label
folder defines the evaluated image set:

- a label file without a prediction file = an image with no detections (its objects are
  misses); counted in the metadata and logged;
- a prediction file without a label file is NOT scored (we cannot tell an unlabelled image
  from a stray file); counted in the metadata and logged. An image that truly has no objects
  needs an empty label file, and then all its detections are false positives.

Class names are compared lower-cased (TAO lower-cases labels); ``class_mapping`` maps source
names (labels and predictions alike) to target class names first. Objects of other classes
are left out and counted per name. Degenerate label boxes (int(x1) >= int(x2) or
int(y1) >= int(y2)) are dropped as dataset_convert drops them.
"""

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.common.errors import DataError
from tao_qat.data.kitti import read_kitti_labels, read_kitti_predictions, split_degenerate
from tao_qat.evaluation.evaluator import evaluate_detections

logger = logging.getLogger(__name__)

MAX_LISTED = 20  # file stems listed in the metadata (all are counted)


def evaluate_prediction_dirs(
    predictions_dir,
    label_dir,
    class_names,
    iou_thresholds=0.5,
    box_filters=None,
    ap_mode="integrate",
    class_mapping=None,
):
    """Evaluate KITTI prediction files (16 fields, confidence last) against KITTI labels.

    Args:
        predictions_dir: folder of ``<stem>.txt`` prediction files.
        label_dir: folder of ``<stem>.txt`` label files (15 fields); defines the image set.
        class_names: target class names (the class ids of the result).
        iou_thresholds, box_filters, ap_mode: as ``evaluate_detections``; box filters apply
            to the boxes as written (original image pixels for ``qat inference`` dumps).
        class_mapping: optional {source name: target class name}, case-insensitive keys.
    Returns:
        EvaluationResult whose ``metadata`` holds the pairing and class counts.
    Raises:
        DataError: a folder is missing, the label folder has no ``.txt`` files, or a file has
            a malformed line (``file:line``).
    """
    predictions_dir, label_dir = Path(predictions_dir), Path(label_dir)
    for folder, what in ((label_dir, "label"), (predictions_dir, "predictions")):
        if not folder.is_dir():
            raise DataError(f"{folder}: {what} folder not found")
    label_files = {path.stem: path for path in sorted(label_dir.glob("*.txt"))}
    if not label_files:
        raise DataError(f"{label_dir}: no .txt label files")
    prediction_files = {path.stem: path for path in sorted(predictions_dir.glob("*.txt"))}
    to_id = _class_lookup(class_names, class_mapping)

    unmapped_labels, unmapped_predictions = Counter(), Counter()
    missing, degenerate = [], 0
    detections, ground_truth = [], []
    for stem, label_path in label_files.items():
        kept, skipped = split_degenerate(read_kitti_labels(label_path))
        degenerate += len(skipped)
        gt_ids = np.array([to_id.get(obj.class_name, -1) for obj in kept], np.int32)
        unmapped_labels.update(o.class_name for o, i in zip(kept, gt_ids, strict=True) if i < 0)
        ground_truth.append(GroundTruth([obj.box for obj in kept], gt_ids))
        if stem not in prediction_files:
            missing.append(stem)
            detections.append(Detections())
            continue
        predicted = read_kitti_predictions(prediction_files[stem])
        det_ids = np.array([to_id.get(name, -1) for name in predicted.class_names], np.int32)
        unmapped_predictions.update(np.asarray(predicted.class_names, object)[det_ids < 0])
        keep = det_ids >= 0
        detections.append(Detections(predicted.boxes[keep], predicted.scores[keep], det_ids[keep]))
    unlabelled = sorted(set(prediction_files) - set(label_files))

    if missing:
        logger.warning(
            "%d label file(s) have no prediction file (scored as no detections), e.g. %s",
            len(missing),
            missing[0],
        )
    if unlabelled:
        logger.warning(
            "%d prediction file(s) have no label file and are not scored, e.g. %s",
            len(unlabelled),
            unlabelled[0],
        )
    result = evaluate_detections(
        detections, ground_truth, class_names, iou_thresholds, box_filters, ap_mode
    )
    result.metadata.update(
        images=len(label_files),
        missing_prediction_files=len(missing),
        missing_prediction_examples=missing[:MAX_LISTED],
        predictions_without_labels=len(unlabelled),
        predictions_without_labels_examples=unlabelled[:MAX_LISTED],
        skipped_degenerate_labels=degenerate,
        unmapped_label_classes=dict(sorted(unmapped_labels.items())),
        unmapped_prediction_classes=dict(sorted(unmapped_predictions.items())),
    )
    return result


def _class_lookup(class_names, class_mapping):
    """{lower-cased source name: class id}: the target names themselves plus the mapping."""
    ids = {name.lower(): index for index, name in enumerate(class_names)}
    lookup = dict(ids)
    for source, target in (class_mapping or {}).items():
        if target.lower() not in ids:
            raise ValueError(f"class_mapping: target {target!r} is not one of {class_names}")
        lookup[source.lower()] = ids[target.lower()]
    return lookup

"""``qat evaluate``: score a model (or KITTI prediction files) on the spec's validation data
(reference §5).

With a model, images come from the spec's validation split (or the training split with
``use_training_set``) without augmentation, in network-input pixels. With ``predictions_dir``,
KITTI detection files (``qat inference`` or DeepStream output, original image pixels) are scored
against a KITTI label folder or, by default, the spec's validation records (original pixels).
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.fileio import check_writable_output
from tao_qat.evaluation.report import format_table, plot_precision_recall, write_results_json
from tao_qat.inference.detect import DetectionScorer
from tao_qat.spec.loader import load_experiment_spec
from tao_qat.spec.paths import spec_dir_of

logger = logging.getLogger(__name__)

RESULTS_JSON = "results.json"
PR_PLOT = "precision_recall.png"


@dataclass
class EvaluateOptions:
    """Flags of ``qat evaluate`` as plain values (see the CLI help)."""

    spec_path: str
    model_path: str | None = None
    framework: str | None = None
    key: str | None = None
    use_training_set: bool = False
    results_dir: str | None = None
    predictions_dir: str | None = None
    label_dir: str | None = None
    batch_size: int | None = None
    force: bool = False
    echo: object = print


def run_evaluate(options):
    """Evaluate; print the per-class table; write results.json and the PR plot to
    ``results_dir`` (if given). Returns the EvaluationResult."""
    experiment = load_experiment_spec(options.spec_path)
    spec_dir = spec_dir_of(options.spec_path)
    scorer = DetectionScorer.from_spec(experiment)
    outputs = _outputs(options.results_dir, options.force)
    if options.predictions_dir:
        if options.model_path:
            raise UsageError("-m/--model and --predictions_dir exclude each other")
        result = _score_prediction_files(experiment, scorer, options, spec_dir)
    else:
        if not options.model_path:
            raise UsageError("give -m/--model (or --predictions_dir to score detection files)")
        result = _score_model(experiment, scorer, options, spec_dir)
    options.echo(format_table(result))
    if outputs:
        write_results_json(outputs[0], result, force=options.force)
        plot_precision_recall(outputs[1], result, force=options.force,
                              title=f"{Path(options.model_path or options.predictions_dir).name}")
        options.echo(f"Wrote {outputs[0]} and {outputs[1]}")
    return result


def _outputs(results_dir, force):
    if not results_dir:
        return None
    paths = (Path(results_dir) / RESULTS_JSON, Path(results_dir) / PR_PLOT)
    for path in paths:
        check_writable_output(path, force)
    return paths


def _score_model(experiment, scorer, options, spec_dir):
    from tao_qat.common.progress import Progress
    from tao_qat.data.decode import reraise_data_errors
    from tao_qat.data.pipeline import build_dataset
    from tao_qat.data.records import load_split
    from tao_qat.inference.predictor import load_predictor

    split = "train_eval" if options.use_training_set else "validation"
    records = load_split(experiment, split, spec_dir)
    batch_size = options.batch_size or experiment.training_config.batch_size_per_gpu
    predictor = load_predictor(options.model_path, options.framework, options.key)
    _check_input_shape(predictor, experiment)
    dataset = build_dataset(experiment, split, batch_size=batch_size, spec_dir=spec_dir,
                            records=records)
    with Progress(math.ceil(len(records) / batch_size), desc="evaluate",
                  items_name="images") as progress, reraise_data_errors():
        result, median = scorer.evaluate(predictor, _counting(dataset, progress))
    options.echo(f"Median inference time: {median * 1000:.1f} ms/image ({len(records)} images)")
    return result


def _counting(dataset, progress):
    for batch in dataset:
        yield batch
        progress.update(1, items=int(batch["images"].shape[0]))


def _check_input_shape(predictor, experiment):
    from tao_qat.spec.defaults import input_shape

    want = tuple(input_shape(experiment))
    if tuple(predictor.input_shape) != want:
        raise UsageError(
            f"model input {predictor.input_shape} (H, W, C) differs from the spec's "
            f"augmentation_config.preprocessing {want}"
        )


def _score_prediction_files(experiment, scorer, options, spec_dir):
    from tao_qat.evaluation.prediction_files import evaluate_prediction_dirs

    mapping = dict(experiment.dataset_config.target_class_mapping)
    settings = scorer.evaluation
    if options.label_dir:
        return evaluate_prediction_dirs(
            options.predictions_dir, options.label_dir, scorer.class_names,
            settings.iou_thresholds, settings.box_filters, settings.ap_mode, mapping,
        )
    return _score_against_records(experiment, scorer, options, spec_dir)


def _score_against_records(experiment, scorer, options, spec_dir):
    """Prediction files vs the spec's validation records (original image pixels)."""
    from tao_qat.data.kitti import read_kitti_predictions
    from tao_qat.data.records import load_split

    split = "train_eval" if options.use_training_set else "validation"
    records = load_split(experiment, split, spec_dir)
    folder = Path(options.predictions_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: predictions folder not found")
    lookup = {name.lower(): i for i, name in enumerate(scorer.class_names)}
    detections, ground_truth, missing = [], [], 0
    for index, frame_id in enumerate(records.frame_ids):
        boxes, classes = records.frame_boxes(index)
        ground_truth.append(GroundTruth(boxes, classes))
        path = folder / f"{Path(frame_id).name}.txt"
        if not path.exists():
            missing += 1
            detections.append(Detections())
            continue
        predicted = read_kitti_predictions(path)
        ids = [lookup.get(name.lower(), -1) for name in predicted.class_names]
        keep = [i for i, class_id in enumerate(ids) if class_id >= 0]
        detections.append(Detections(predicted.boxes[keep], predicted.scores[keep],
                                     [ids[i] for i in keep]))
    if missing:
        logger.warning("%d of %d frames have no prediction file in %s (scored as no detections)",
                       missing, len(records), folder)
    result = scorer.score(detections, ground_truth)
    result.metadata.update(images=len(records), missing_prediction_files=missing)
    return result

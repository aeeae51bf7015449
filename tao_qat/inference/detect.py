"""Detect on a dataset and score the detections: the loop shared by training-time validation
and ``qat evaluate`` (reference §4.1, §5)."""

import logging
import time
from dataclasses import dataclass

import numpy as np

from tao_qat.common.detections import GroundTruth
from tao_qat.evaluation.evaluator import EvaluationSettings
from tao_qat.postprocessing.postprocess import postprocess_batch
from tao_qat.postprocessing.settings import build_clustering_settings
from tao_qat.spec.defaults import input_shape, target_class_names

logger = logging.getLogger(__name__)


@dataclass
class DetectionScorer:
    """Postprocessing and evaluation settings of an Experiment, as plain values.

    Attributes:
        class_names: target classes in network output order.
        clustering: one ClusteringSettings per class.
        evaluation: EvaluationSettings (IoU thresholds, box filters, AP mode).
        image_size: (W, H) network input size in pixels.
        scale, offset: bbox objective normalisation.
    """

    class_names: list
    clustering: list
    evaluation: EvaluationSettings
    image_size: tuple
    scale: float = 35.0
    offset: float = 0.5

    @classmethod
    def from_spec(cls, experiment):
        names = target_class_names(experiment)
        height, width, _ = input_shape(experiment)
        bbox = experiment.model_config.objective_set.bbox
        return cls(
            class_names=names,
            clustering=build_clustering_settings(experiment.postprocessing_config, names),
            evaluation=EvaluationSettings.from_spec(experiment.evaluation_config, names),
            image_size=(width, height),
            scale=bbox.scale or 35.0,
            offset=bbox.offset,
        )

    def detect(self, predictor, dataset, progress=None, on_batch=None):
        """Run ``predictor`` over ``dataset`` batches (pipeline dicts).

        ``on_batch(batch, cov, bbox)``, when given, sees every batch with the raw network
        outputs (e.g. to compute a cost in the same pass).

        Returns:
            (frame_ids list[str], detections list[Detections], ground_truth list[GroundTruth],
            seconds spent in the predictor per image list[float]).
        """
        frame_ids, detections, ground_truth, seconds = [], [], [], []
        for batch in dataset:
            images = batch["images"].numpy()
            start = time.perf_counter()
            cov, bbox = predictor(images)
            elapsed = (time.perf_counter() - start) / max(len(images), 1)
            if on_batch is not None:
                on_batch(batch, cov, bbox)
            detections += postprocess_batch(
                cov, bbox, self.clustering, scale=self.scale, offset=self.offset,
                image_size=self.image_size,
            )
            boxes, classes = batch["boxes"].numpy(), batch["classes"].numpy()
            for i, count in enumerate(batch["num_boxes"].numpy()):
                ground_truth.append(GroundTruth(boxes[i, :count], classes[i, :count]))
            frame_ids += [f.decode() for f in batch["frame_id"].numpy()]
            seconds += [elapsed] * len(images)
            if progress is not None:
                progress.update(len(images))
        return frame_ids, detections, ground_truth, seconds

    def score(self, detections, ground_truth):
        """EvaluationResult of detections against ground truth (network-input pixels)."""
        return self.evaluation.evaluate(detections, ground_truth, self.class_names)

    def evaluate(self, predictor, dataset, progress=None, on_batch=None):
        """Detect on ``dataset`` and score: returns (EvaluationResult, median s/image)."""
        _, detections, ground_truth, seconds = self.detect(predictor, dataset, progress,
                                                           on_batch)
        result = self.score(detections, ground_truth)
        median = float(np.median(seconds)) if seconds else 0.0
        result.metadata.update(images=len(ground_truth), median_inference_seconds=median)
        return result, median

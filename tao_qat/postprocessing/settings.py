"""Per-class clustering settings as plain values, built from either spec (§1.7 / §4 / §9).

Two TAO spec messages configure clustering and they are read with different defaults:

- Experiment ``postprocessing_config.target_class_config[class]`` (train / evaluate, §4.1):
  values are used as written; DBSCAN confidence = sum of coverage. TAO's train/evaluate
  builder swaps ``dbscan_confidence_threshold`` and ``nms_confidence_threshold``; we read each
  field for its own algorithm (see docs/postprocessing.md).
- Inference ``bbox_handler_config.classwise_bbox_handler_config[class]`` (§4.2): a
  ``"default"`` entry serves classes without their own entry; unset ``nms_iou_threshold`` means
  0.3 and unset ``nms_confidence_threshold`` means 0.1; ``confidence_model`` is
  ``aggregate_cov`` (sum of coverage) or ``mean_cov``.
"""

import logging
import math
from dataclasses import dataclass

from tao_qat.common.errors import SpecError

logger = logging.getLogger(__name__)

ALGORITHMS = ("dbscan", "nms", "hybrid")
CONFIDENCE_MODELS = ("aggregate_cov", "mean_cov")
DEFAULT_KEY = "default"

# Inference-path substitutes for unset (zero) proto3 fields (TAO bbox_handler, §4.2).
INFERENCE_NMS_IOU_DEFAULT = 0.3
INFERENCE_NMS_CONFIDENCE_DEFAULT = 0.1


@dataclass(frozen=True)
class ClusteringSettings:
    """How the grid cells of one class become detections.

    Attributes:
        algorithm: "dbscan", "nms" or "hybrid" (DBSCAN, then NMS over the member cells of the
            surviving clusters).
        coverage_threshold: cells with cov > this (strict) are candidates.
        minimum_height: detections with height (y2 - y1, input pixels) <= this are dropped
            (applied to every algorithm; TAO skips it for NMS).
        dbscan_eps: DBSCAN neighbourhood radius in 1 - IoU units.
        dbscan_min_samples: a core cell needs sum(cov) >= this over its eps-neighbourhood
            (itself included). The specs' int 1 makes clusters need sum(cov) >= 1; a float
            below 1 suits weakly trained models.
        dbscan_confidence_threshold: DBSCAN clusters keep confidence > this.
        nms_iou_threshold: NMS suppresses boxes with IoU (+1 pixel convention) > this.
        nms_confidence_threshold: NMS keeps cells with cov > this.
        confidence_model: DBSCAN cluster confidence, "aggregate_cov" (sum of cov, may exceed 1)
            or "mean_cov" ((mean - min) / (max - min) of the member cov; 0 when max == min).
        confidence_threshold: final filter, keep confidence >= this (the Experiment's
            ``confidence_config.confidence_threshold``; 0 keeps everything).
    """

    algorithm: str = "dbscan"
    coverage_threshold: float = 0.005
    minimum_height: float = 0.0
    dbscan_eps: float = 0.13
    dbscan_min_samples: float = 1.0
    dbscan_confidence_threshold: float = 0.0
    nms_iou_threshold: float = 0.3
    nms_confidence_threshold: float = 0.0
    confidence_model: str = "aggregate_cov"
    confidence_threshold: float = 0.0

    def __post_init__(self):
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self):
        """The first invalid value as ``"<field>: <reason>"``, or None."""
        if self.algorithm not in ALGORITHMS:
            return f"algorithm: {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}"
        if self.confidence_model not in CONFIDENCE_MODELS:
            valid = ", ".join(CONFIDENCE_MODELS)
            return f"confidence_model: {self.confidence_model!r} is not one of {valid}"
        for name in ("coverage_threshold", "dbscan_eps", "nms_iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                return f"{name}: {value} is not in [0, 1]"
        for name in (
            "minimum_height",
            "dbscan_confidence_threshold",
            "nms_confidence_threshold",
            "confidence_threshold",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                return f"{name}: {value} must be >= 0"
        if not (math.isfinite(self.dbscan_min_samples) and self.dbscan_min_samples > 0.0):
            return f"dbscan_min_samples: {self.dbscan_min_samples} must be > 0"
        return None

    @classmethod
    def from_spec(cls, message, field_path="target_class_config"):
        """Build from an Experiment ``PostProcessingConfig.TargetClassConfig`` or an Inference
        ``ClasswiseBboxHandlerConfig`` message (dispatched on the message's fields).

        Raises SpecError naming ``field_path`` for invalid values.
        """
        fields = message.DESCRIPTOR.fields_by_name
        if "confidence_model" in fields:
            values = _inference_values(message)
        elif "confidence_config" in fields:
            values = _experiment_values(message, field_path)
        else:
            raise TypeError(f"not a clustering spec message: {message.DESCRIPTOR.full_name}")
        try:
            return cls(**values)
        except ValueError as exc:
            raise SpecError(f"{field_path}: {_spec_field_message(str(exc))}") from None


# Plain-value field -> the spec field that feeds it, for error messages.
_SPEC_FIELD_NAMES = {
    "algorithm": "clustering_config.clustering_algorithm",
    "minimum_height": "clustering_config.minimum_bounding_box_height",
    "confidence_model": "confidence_model",
    "confidence_threshold": "confidence_config.confidence_threshold",
}


def _spec_field_message(problem):
    name, _, reason = problem.partition(": ")
    return f"{_SPEC_FIELD_NAMES.get(name, 'clustering_config.' + name)}: {reason}"


def _algorithm_name(clustering_config):
    enum = clustering_config.DESCRIPTOR.fields_by_name["clustering_algorithm"].enum_type
    return enum.values_by_number[clustering_config.clustering_algorithm].name.lower()


def _common_values(clustering_config):
    return dict(
        algorithm=_algorithm_name(clustering_config),
        coverage_threshold=clustering_config.coverage_threshold,
        minimum_height=float(clustering_config.minimum_bounding_box_height),
        dbscan_eps=clustering_config.dbscan_eps,
        # TAO: max(int(dbscan_min_samples), 1).
        dbscan_min_samples=float(max(int(clustering_config.dbscan_min_samples), 1)),
        dbscan_confidence_threshold=clustering_config.dbscan_confidence_threshold,
    )


def _experiment_values(target_class_config, field_path):
    clustering = target_class_config.clustering_config
    confidence = target_class_config.confidence_config
    if confidence.confidence_model_filename:
        logger.warning(
            "%s.confidence_config.confidence_model_filename is ignored "
            "(TAO does not support confidence models either)",
            field_path,
        )
    return dict(
        _common_values(clustering),
        nms_iou_threshold=clustering.nms_iou_threshold,
        nms_confidence_threshold=clustering.nms_confidence_threshold,
        confidence_model="aggregate_cov",
        confidence_threshold=confidence.confidence_threshold,
    )


def _inference_values(classwise_config):
    clustering = classwise_config.clustering_config
    return dict(
        _common_values(clustering),
        nms_iou_threshold=clustering.nms_iou_threshold or INFERENCE_NMS_IOU_DEFAULT,
        nms_confidence_threshold=(
            clustering.nms_confidence_threshold or INFERENCE_NMS_CONFIDENCE_DEFAULT
        ),
        # TAO fails on an empty confidence_model; we read it as the usual "aggregate_cov".
        confidence_model=classwise_config.confidence_model or "aggregate_cov",
    )


def build_clustering_settings(postprocessing_config, class_names):
    """Experiment ``postprocessing_config`` -> [ClusteringSettings] in ``class_names`` order.

    Every target class needs an entry (extra keys are allowed); SpecError names the field path.
    """
    settings = []
    for name in class_names:
        path = f"postprocessing_config.target_class_config['{name}']"
        if name not in postprocessing_config.target_class_config:
            raise SpecError(f"{path}: missing (every target class needs clustering settings)")
        entry = postprocessing_config.target_class_config[name]
        settings.append(ClusteringSettings.from_spec(entry, path))
    return settings


def build_inference_clustering_settings(bbox_handler_config, class_names):
    """Inference ``bbox_handler_config`` -> [ClusteringSettings] in ``class_names`` order.

    Classes without an entry use the ``"default"`` entry; SpecError if neither exists.
    """
    entries = bbox_handler_config.classwise_bbox_handler_config
    settings = []
    for name in class_names:
        key = _inference_key(entries, name)
        path = f"bbox_handler_config.classwise_bbox_handler_config['{key}']"
        settings.append(ClusteringSettings.from_spec(entries[key], path))
    return settings


def inference_display_names(bbox_handler_config, class_names):
    """Names written to KITTI dumps / overlays, in ``class_names`` order (TAO §9).

    A class's own entry may rename it with ``output_map``; classes served by the ``"default"``
    entry keep their own name. SpecError if a name contains whitespace (KITTI is space-separated).
    """
    entries = bbox_handler_config.classwise_bbox_handler_config
    names = []
    for name in class_names:
        key = _inference_key(entries, name)
        display = (
            entries[key].output_map if key != DEFAULT_KEY and entries[key].output_map else name
        )
        if not display or any(ch.isspace() for ch in display):
            raise SpecError(
                f"bbox_handler_config.classwise_bbox_handler_config['{key}'].output_map: "
                f"{display!r} cannot be a KITTI class name (empty or contains whitespace)"
            )
        names.append(display)
    return names


def _inference_key(entries, name):
    if name in entries:
        return name
    if DEFAULT_KEY in entries:
        return DEFAULT_KEY
    raise SpecError(
        f"bbox_handler_config.classwise_bbox_handler_config: no entry for class '{name}' "
        f"and no '{DEFAULT_KEY}' entry"
    )

"""Network outputs of a batch -> one ``Detections`` per image (decode, threshold, cluster; §4).

Pipeline per image and class: decode every cell's box (§3.3) and clip it to the input frame
(TAO's evaluation path), keep cells with cov > coverage_threshold, cluster them
(``cluster.cluster_cells``). Detections of an image are class-major (classes in output order),
each class by descending confidence, like TAO's KITTI dumps.
"""

import numpy as np

from tao_qat.common.detections import Detections
from tao_qat.postprocessing.boxes import rescale_boxes
from tao_qat.postprocessing.cluster import cluster_cells
from tao_qat.postprocessing.decode import (
    DEFAULT_OFFSET,
    DEFAULT_SCALE,
    as_stride,
    decode_bbox,
    stride_from_sizes,
)
from tao_qat.postprocessing.settings import ClusteringSettings


def postprocess_batch(
    cov,
    bbox,
    configs,
    stride=None,
    scale=DEFAULT_SCALE,
    offset=DEFAULT_OFFSET,
    image_size=None,
):
    """Cluster a batch of DetectNet_v2 outputs into detections.

    Args:
        cov: float [B, Gh, Gw, C] coverage (sigmoid outputs).
        bbox: float [B, Gh, Gw, 4C] encoded (L, T, R, B) per class, class-major channels.
        configs: one ClusteringSettings for every class, or a sequence of C of them (output
            class order), e.g. from ``build_clustering_settings``.
        stride: scalar or (sx, sy) input pixels per cell; default image_size / grid size.
        scale, offset: bbox normalisation (35.0, 0.5 in NVIDIA specs).
        image_size: (W, H) of the network input; default grid size * stride. Boxes are
            clipped to it.
    Returns:
        list of B Detections, boxes in input pixels.
    """
    cov = np.asarray(cov, np.float32)
    bbox = np.asarray(bbox, np.float32)
    if cov.ndim != 4 or bbox.shape != (*cov.shape[:3], 4 * cov.shape[3]):
        raise ValueError(
            f"expected cov [B, Gh, Gw, C] and bbox [B, Gh, Gw, 4C], got {cov.shape} and "
            f"{bbox.shape}"
        )
    num_classes = cov.shape[3]
    settings = _per_class(configs, num_classes)
    grid_h, grid_w = cov.shape[1:3]
    if stride is None:
        if image_size is None:
            raise ValueError("postprocess_batch needs stride or image_size")
        stride = stride_from_sizes(image_size, (grid_w, grid_h))
    sx, sy = as_stride(stride)
    if image_size is None:
        image_size = (grid_w * sx, grid_h * sy)
    boxes = decode_bbox(bbox, (sx, sy), scale, offset, image_size=image_size, clip=True)
    boxes = boxes.reshape(len(cov), grid_h * grid_w, num_classes, 4)
    covs = cov.reshape(len(cov), grid_h * grid_w, num_classes)

    results = []
    for image in range(len(cov)):
        parts = []
        for class_id, class_settings in enumerate(settings):
            class_covs = covs[image, :, class_id]
            candidates = class_covs > class_settings.coverage_threshold
            out_boxes, out_scores = cluster_cells(
                boxes[image, candidates, class_id], class_covs[candidates], class_settings
            )
            parts.append((out_boxes, out_scores, np.full(len(out_scores), class_id, np.int32)))
        results.append(_concat(parts))
    return results


def _per_class(configs, num_classes):
    if isinstance(configs, ClusteringSettings):
        return [configs] * num_classes
    configs = list(configs)
    if len(configs) != num_classes:
        raise ValueError(f"{len(configs)} clustering settings for {num_classes} classes")
    return configs


def _concat(parts):
    if not parts:
        return Detections()
    boxes, scores, class_ids = zip(*parts, strict=True)
    return Detections(np.concatenate(boxes), np.concatenate(scores), np.concatenate(class_ids))


def rescale_detections(detections, input_size, original_size):
    """Detections in network-input pixels -> original-image pixels (TAO inference, §4.2 / §9).

    Boxes are clipped to the input frame ``input_size`` (W, H) first, then scaled by
    original_size / input_size per axis. Scores and classes are unchanged.
    """
    return Detections(
        rescale_boxes(detections.boxes, input_size, original_size),
        detections.scores.copy(),
        detections.class_ids.copy(),
    )

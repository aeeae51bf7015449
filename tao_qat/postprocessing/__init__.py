"""Postprocessing (numpy): grid decoding, DBSCAN / NMS / HYBRID clustering, filters."""

from tao_qat.postprocessing.boxes import clip_boxes, pairwise_iou, rescale_boxes
from tao_qat.postprocessing.cluster import cluster_cells
from tao_qat.postprocessing.decode import decode_bbox
from tao_qat.postprocessing.kitti_dump import format_kitti_detections, write_kitti_detections
from tao_qat.postprocessing.postprocess import postprocess_batch, rescale_detections
from tao_qat.postprocessing.settings import (
    ClusteringSettings,
    build_clustering_settings,
    build_inference_clustering_settings,
    inference_display_names,
)

__all__ = [
    "ClusteringSettings",
    "build_clustering_settings",
    "build_inference_clustering_settings",
    "clip_boxes",
    "cluster_cells",
    "decode_bbox",
    "format_kitti_detections",
    "inference_display_names",
    "pairwise_iou",
    "postprocess_batch",
    "rescale_boxes",
    "rescale_detections",
    "write_kitti_detections",
]

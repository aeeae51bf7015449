"""ClusteringSettings builders from the Experiment and Inference specs (§1.7, §4, §9)."""

import numpy as np
import pytest
from google.protobuf import text_format

from tao_qat.common.errors import SpecError
from tao_qat.postprocessing.cluster import cluster_cells
from tao_qat.postprocessing.settings import (
    ClusteringSettings,
    build_clustering_settings,
    build_inference_clustering_settings,
    inference_display_names,
)
from tao_qat.spec.loader import load_experiment_spec, load_inference_spec
from tao_qat.spec.proto.inference_pb2 import BboxHandlerConfig
from tao_qat.spec.proto.postprocessing_config_pb2 import PostProcessingConfig


def postprocessing(text):
    return text_format.Parse(text, PostProcessingConfig())


def bbox_handler(text):
    return text_format.Parse(text, BboxHandlerConfig())


def test_experiment_spec_file(test_data):
    spec = load_experiment_spec(
        test_data / "specs" / "detectnet_v2_retrain_resnet18_kitti_qat.txt", validate=False
    )
    car, pedestrian = build_clustering_settings(spec.postprocessing_config, ["car", "pedestrian"])
    assert car.algorithm == "dbscan"
    assert car.dbscan_eps == pytest.approx(0.2)
    assert car.dbscan_min_samples == 1.0
    assert car.minimum_height == 20.0
    assert car.dbscan_confidence_threshold == pytest.approx(0.9)  # TAO's evaluate reads 0 here
    assert car.nms_confidence_threshold == 0.0
    assert car.confidence_model == "aggregate_cov"
    assert pedestrian.coverage_threshold == pytest.approx(0.0075)


def test_experiment_thresholds_are_not_swapped():
    config = postprocessing("""
        target_class_config { key: "car" value { clustering_config {
            clustering_algorithm: DBSCAN dbscan_eps: 0.3 dbscan_min_samples: 1
            dbscan_confidence_threshold: 1.1 nms_confidence_threshold: 0.2 } } }
        target_class_config { key: "truck" value { clustering_config {
            clustering_algorithm: NMS nms_iou_threshold: 0.5
            dbscan_confidence_threshold: 0.0 nms_confidence_threshold: 0.6 } } }
    """)
    car, truck = build_clustering_settings(config, ["car", "truck"])
    assert (car.dbscan_confidence_threshold, car.nms_confidence_threshold) == (
        pytest.approx(1.1),
        pytest.approx(0.2),
    )
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11]], float)
    covs = np.array([0.5, 0.25, 0.25])
    # DBSCAN cluster confidence 1.0 <= 1.1 -> dropped (TAO's swap would filter with 0.2: kept)
    assert len(cluster_cells(boxes, covs, car)[1]) == 0
    # NMS keeps cov > 0.6 only (TAO's swap would use 0.0 and keep A): nothing here
    assert truck.algorithm == "nms" and truck.nms_iou_threshold == 0.5
    assert len(cluster_cells(boxes, covs, truck)[1]) == 0


def test_experiment_values_are_used_as_written():
    config = postprocessing("""
        target_class_config { key: "car" value {
            clustering_config { clustering_algorithm: HYBRID dbscan_eps: 0.1 }
            confidence_config { confidence_threshold: 0.3 } } }
    """)
    (car,) = build_clustering_settings(config, ["car"])
    # unset min_samples 0 -> TAO's max(int(0), 1) = 1; unset NMS IoU stays 0 in this path
    assert car.algorithm == "hybrid"
    assert car.dbscan_min_samples == 1.0 and car.nms_iou_threshold == 0.0
    assert car.confidence_threshold == pytest.approx(0.3)


def test_experiment_errors_name_the_field():
    config = postprocessing("""
        target_class_config { key: "car" value { clustering_config { coverage_threshold: 2 } } }
    """)
    with pytest.raises(SpecError, match=r"target_class_config\['truck'\]: missing"):
        build_clustering_settings(config, ["truck", "car"])
    message = (
        r"^postprocessing_config.target_class_config\['car'\]: "
        r"clustering_config.coverage_threshold: 2.0 is not in \[0, 1\]$"
    )
    with pytest.raises(SpecError, match=message):
        build_clustering_settings(config, ["car"])


def test_inference_spec_file(test_data):
    spec = load_inference_spec(test_data / "specs" / "inference_example.txt", validate=False)
    handler = spec.bbox_handler_config
    car, pedestrian = build_inference_clustering_settings(handler, ["car", "pedestrian"])
    assert car.algorithm == "dbscan" and car.dbscan_eps == pytest.approx(0.3)
    assert car.dbscan_confidence_threshold == pytest.approx(0.9)
    assert car.nms_iou_threshold == pytest.approx(0.3)  # unset -> 0.3
    assert car.nms_confidence_threshold == pytest.approx(0.1)  # unset -> 0.1
    assert pedestrian.algorithm == "nms" and pedestrian.confidence_model == "mean_cov"
    assert pedestrian.nms_iou_threshold == pytest.approx(0.5)
    assert inference_display_names(handler, ["car", "pedestrian"]) == ["car", "person"]


def test_inference_default_entry():
    handler = bbox_handler("""
        classwise_bbox_handler_config { key: "default" value {
            confidence_model: "aggregate_cov" output_map: "thing"
            clustering_config { coverage_threshold: 0.01 dbscan_eps: 0.2 } } }
        classwise_bbox_handler_config { key: "car" value {
            output_map: "auto" clustering_config { clustering_algorithm: NMS } } }
    """)
    car, tree = build_inference_clustering_settings(handler, ["car", "tree"])
    assert car.algorithm == "nms" and car.confidence_model == "aggregate_cov"  # "" -> aggregate
    assert tree.coverage_threshold == pytest.approx(0.01)
    # the default entry's output_map is not used: classes keep their own names
    assert inference_display_names(handler, ["car", "tree"]) == ["auto", "tree"]


def test_inference_errors():
    handler = bbox_handler("""
        classwise_bbox_handler_config { key: "car" value { confidence_model: "mlp" } }
    """)
    with pytest.raises(SpecError, match="no entry for class 'tree' and no 'default' entry"):
        build_inference_clustering_settings(handler, ["tree"])
    with pytest.raises(SpecError, match=r"\['car'\]: confidence_model: 'mlp' is not one of"):
        build_inference_clustering_settings(handler, ["car"])
    spaced = bbox_handler("""
        classwise_bbox_handler_config { key: "car" value { output_map: "my car" } }
    """)
    with pytest.raises(SpecError, match="output_map: 'my car' cannot be a KITTI class name"):
        inference_display_names(spaced, ["car"])


def test_from_spec_rejects_other_messages():
    with pytest.raises(TypeError, match="not a clustering spec message"):
        ClusteringSettings.from_spec(PostProcessingConfig())

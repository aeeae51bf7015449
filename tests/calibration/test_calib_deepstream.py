"""DeepStream nvinfer config + labels.txt (TAO §8 --gen_ds_config, completed for nvinfer)."""

import pytest
from google.protobuf import text_format

from tao_qat.common.errors import OutputExistsError, UsageError
from tao_qat.export.deepstream import class_attributes, write_deepstream_config
from tao_qat.postprocessing.settings import ClusteringSettings, build_clustering_settings
from tao_qat.spec.proto.postprocessing_config_pb2 import PostProcessingConfig

POSTPROCESSING = """
target_class_config { key: "car" value {
  clustering_config { clustering_algorithm: NMS coverage_threshold: 0.005
    nms_iou_threshold: 0.45 nms_confidence_threshold: 0.2 minimum_bounding_box_height: 20
    dbscan_eps: 0.2 dbscan_min_samples: 1 }
  confidence_config { confidence_threshold: 0.3 } } }
target_class_config { key: "person" value {
  clustering_config { clustering_algorithm: NMS coverage_threshold: 0.3
    nms_iou_threshold: 0.5 nms_confidence_threshold: 0.1 minimum_bounding_box_height: 4 } } }
"""

EXPECTED = """\
# DeepStream Gst-nvinfer config written by tao_qat (paths relative to this file)
[property]
gpu-id=0
net-scale-factor=0.00392156862745098
offsets=0.0;0.0;0.0
model-color-format=0
onnx-file=../model.onnx
int8-calib-file=cal.bin
labelfile-path=labels.txt
infer-dims=3;384;1248
maintain-aspect-ratio=0
batch-size=4
network-mode=1
network-type=0
num-detected-classes=2
output-blob-names=output_cov/Sigmoid;output_bbox/BiasAdd
output-tensor-meta=0
cluster-mode=2
process-mode=1
gie-unique-id=1

# car
[class-attrs-0]
pre-cluster-threshold=0.2
nms-iou-threshold=0.45
detected-min-h=20
post-cluster-threshold=0.3

# person
[class-attrs-1]
pre-cluster-threshold=0.3
nms-iou-threshold=0.5
detected-min-h=4
"""


def two_class_settings():
    config = text_format.Parse(POSTPROCESSING, PostProcessingConfig())
    return build_clustering_settings(config, ["car", "person"])


def test_two_class_nms_config_text(tmp_path):
    folder = tmp_path / "ds"
    config, labels = write_deepstream_config(
        folder,
        onnx_file=tmp_path / "model.onnx",
        cal_cache_file=folder / "cal.bin",
        input_shape=(3, 384, 1248),
        class_names=["car", "person"],
        clustering=two_class_settings(),
        network_mode=1,
        batch_size=4,
    )
    # car: NMS keeps cells above max(coverage 0.005, nms confidence 0.2) = 0.2, and the final
    # confidence filter 0.3 becomes post-cluster-threshold; person: max(0.3, 0.1) = 0.3
    assert config.read_text() == EXPECTED
    assert labels.read_text() == "car\nperson\n"
    with pytest.raises(OutputExistsError, match="nvinfer_config.txt"):
        write_deepstream_config(
            folder,
            onnx_file=tmp_path / "model.onnx",
            input_shape=(3, 384, 1248),
            class_names=["car", "person"],
            clustering=two_class_settings(),
        )


def test_fp16_grey_model_with_key_and_no_calibration_file(tmp_path):
    settings = [ClusteringSettings(algorithm="dbscan")] * 2
    config, _ = write_deepstream_config(
        tmp_path,
        onnx_file=tmp_path / "m.onnx",
        cal_cache_file=tmp_path / "cal.bin",
        input_shape=(1, 64, 96),
        class_names=["a", "b"],
        clustering=settings,
        network_mode=2,
        key="nvidia_tlt",
    )
    lines = config.read_text().splitlines()
    assert "offsets=0" in lines and "model-color-format=2" in lines
    assert "infer-dims=1;64;96" in lines and "network-mode=2" in lines
    assert "tlt-model-key=nvidia_tlt" in lines
    assert not any(line.startswith("int8-calib-file") for line in lines)  # not INT8
    assert "cluster-mode=1" in lines  # DeepStream numbers DBSCAN 1


def test_class_attributes_per_algorithm():
    base = dict(
        coverage_threshold=0.005,
        dbscan_eps=0.13,
        dbscan_min_samples=1.0,
        dbscan_confidence_threshold=0.9,
        nms_iou_threshold=0.3,
    )
    assert class_attributes(ClusteringSettings(algorithm="dbscan", **base)) == [
        ("pre-cluster-threshold", "0.005"),
        ("eps", "0.13"),
        ("minBoxes", "1"),
        ("dbscan-min-score", "0.9"),
    ]
    hybrid = class_attributes(ClusteringSettings(algorithm="hybrid", **base))
    assert [k for k, _ in hybrid] == [
        "pre-cluster-threshold",
        "eps",
        "minBoxes",
        "dbscan-min-score",
        "nms-iou-threshold",
    ]
    # a fractional min_samples (weak models) still gives an integer minBoxes >= 1, and a
    # fractional minimum height rounds up to DeepStream's integer detected-min-h
    weak = dict(base, dbscan_min_samples=0.4, minimum_height=4.5)
    attributes = class_attributes(ClusteringSettings(**weak))
    assert ("minBoxes", "1") in attributes and ("detected-min-h", "5") in attributes


def test_cluster_mode_numbers_and_mixed_algorithms(tmp_path):
    for algorithm, mode in (("dbscan", 1), ("nms", 2), ("hybrid", 3)):
        config, _ = write_deepstream_config(
            tmp_path / algorithm,
            onnx_file="m.onnx",
            input_shape=(3, 32, 32),
            class_names=["a"],
            clustering=[ClusteringSettings(algorithm=algorithm)],
        )
        assert f"cluster-mode={mode}\n" in config.read_text()
    mixed = [ClusteringSettings(algorithm="dbscan"), ClusteringSettings(algorithm="nms")]
    with pytest.raises(UsageError, match="mixes dbscan, nms"):
        write_deepstream_config(
            tmp_path / "mixed",
            onnx_file="m.onnx",
            input_shape=(3, 32, 32),
            class_names=["a", "b"],
            clustering=mixed,
        )
    assert not (tmp_path / "mixed" / "labels.txt").exists()

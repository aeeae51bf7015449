"""TAO's code-level substitutions for proto3 zeros (tao_qat.spec.defaults)."""

import pytest
from spec_testing import DEFAULT_SPEC, QAT_SPEC

from tao_qat.spec import defaults
from tao_qat.spec.loader import load_experiment_spec
from tao_qat.spec.proto import (
    augmentation_config_pb2,
    dataset_config_pb2,
    evaluation_config_pb2,
    inferencer_config_pb2,
    kitti_config_pb2,
    model_config_pb2,
    training_config_pb2,
    visualizer_config_pb2,
)


def test_zero_values_take_tao_defaults():
    assert defaults.num_layers(model_config_pb2.ModelConfig()) == 18
    assert defaults.num_layers(model_config_pb2.ModelConfig(num_layers=34)) == 34
    assert defaults.checkpoint_interval(training_config_pb2.TrainingConfig()) == 10
    assert (
        defaults.checkpoint_interval(training_config_pb2.TrainingConfig(checkpoint_interval=3)) == 3
    )
    assert defaults.source_weight(dataset_config_pb2.DataSource()) == 1.0
    assert defaults.source_weight(dataset_config_pb2.DataSource(source_weight=0.5)) == 0.5
    spatial = augmentation_config_pb2.AugmentationConfig.SpatialAugmentation
    assert defaults.rotate_probability(spatial()) == 1.0
    assert defaults.rotate_probability(spatial(rotate_probability=0.25)) == 0.25
    viz = visualizer_config_pb2.VisualizerConfig()
    assert (defaults.scalar_logging_frequency(viz), defaults.infrequent_logging_frequency(viz)) == (
        10,
        1,
    )
    assert defaults.kitti_image_extension(kitti_config_pb2.KITTIConfig()) == ".png"
    assert (
        defaults.kitti_image_extension(kitti_config_pb2.KITTIConfig(image_extension=".jpg"))
        == ".jpg"
    )


def test_inference_defaults():
    cfg = inferencer_config_pb2.InferencerConfig()
    assert defaults.inference_stride(cfg) == 16
    assert defaults.inference_image_size(cfg) == (544, 960)
    assert defaults.inference_batch_size(cfg) == 1
    assert defaults.inference_image_channels(cfg) == 3
    cfg = inferencer_config_pb2.InferencerConfig(image_height=384, image_width=1248, batch_size=4)
    assert defaults.inference_image_size(cfg) == (384, 1248)
    assert defaults.inference_batch_size(cfg) == 4


def test_experiment_accessors():
    spec = load_experiment_spec(QAT_SPEC)
    assert defaults.target_class_names(spec) == ["car", "cyclist", "pedestrian"]
    assert defaults.input_shape(spec) == (384, 1248, 3)
    pre = spec.augmentation_config.preprocessing
    assert defaults.crop_window(pre) == (0, 0, 1248, 384)  # all crop fields 0
    pre.crop_left, pre.crop_top, pre.crop_right, pre.crop_bottom = 8, 0, 1256, 384
    assert defaults.crop_window(pre) == (8, 0, 1256, 384)


@pytest.mark.parametrize(
    "first, period, epochs, expected",
    [
        (110, 10, 120, [110, 120]),  # default_spec
        (30, 10, 120, [30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),  # qat spec
        (1, 1, 3, [1, 2, 3]),
        (5, 10, 3, [3]),  # first after the end: only the last epoch
        (2, 4, 9, [2, 6, 9]),
    ],
)
def test_validation_epochs(first, period, epochs, expected):
    cfg = evaluation_config_pb2.EvaluationConfig(
        first_validation_epoch=first, validation_period_during_training=period
    )
    assert defaults.validation_epochs(cfg, epochs) == expected


def test_default_spec_validation_epochs():
    spec = load_experiment_spec(DEFAULT_SPEC)
    assert defaults.validation_epochs(spec.evaluation_config, spec.training_config.num_epochs) == [
        110,
        120,
    ]

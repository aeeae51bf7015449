"""Validation rules: broken specs give one error per violation, named by file and field path."""

import pytest
from spec_testing import (
    COCO_EXPORT_SPEC,
    DEFAULT_SPEC,
    INFERENCE_SPEC,
    KITTI_EXPORT_SPEC,
    QAT_SPEC,
    edit,
    errors_of,
)

from tao_qat.common.errors import SpecError
from tao_qat.spec.loader import load_experiment_spec, parse_spec_text
from tao_qat.spec.proto import experiment_pb2
from tao_qat.spec.validation import SpecValidationError, collect_errors, validate

DEFAULT = DEFAULT_SPEC.read_text()
QAT = QAT_SPEC.read_text()
KITTI = KITTI_EXPORT_SPEC.read_text()
COCO = COCO_EXPORT_SPEC.read_text()
INFERENCE = INFERENCE_SPEC.read_text()
CAR_RASTER = """  target_class_config {
    key: "pedestrian"
    value: {
      cov_center_x: 0.5
      cov_center_y: 0.5
      cov_radius_x: 0.4
      cov_radius_y: 0.4
      bbox_min_radius: 1.0
    }
  }
"""
LR = "training_config.learning_rate.soft_start_annealing_schedule"
PP_CAR = 'postprocessing_config.target_class_config["car"].clustering_config'
TC0 = "cost_function_config.target_classes[0]"


@pytest.mark.parametrize(
    "text, kind",
    [
        (DEFAULT, "experiment"),
        (QAT, "experiment"),
        (KITTI, "dataset_export"),
        (COCO, "dataset_export"),
        (INFERENCE, "inference"),
    ],
)
def test_reference_specs_are_valid(text, kind):
    assert errors_of(text, kind) == []


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "soft_start: 0.1",
            "soft_start: 0.9",
            f"{LR}.soft_start: must be <= annealing (0.9 > 0.7)",
        ),
        (
            "min_learning_rate: 5e-6",
            "min_learning_rate: 5e-3",
            f"{LR}.min_learning_rate: must be <= max_learning_rate (0.005 > 0.0005)",
        ),
        ("annealing: 0.7", "annealing: 1.0", f"{LR}.annealing: must be in [0, 1) (1)"),
        ("dbscan_eps: 0.13", "dbscan_eps: 1.5", f"{PP_CAR}.dbscan_eps: must be in [0, 1] (1.5)"),
        # TAO's quirk, kept: dbscan_min_samples must be in [0, 1].
        (
            "dbscan_min_samples: 1",
            "dbscan_min_samples: 2",
            f"{PP_CAR}.dbscan_min_samples: must be in [0, 1] (2)",
        ),
        (
            "output_image_width: 1248",
            "output_image_width: 1250",
            "augmentation_config.preprocessing.output_image_width: must be divisible by 16 (1250)",
        ),
        (
            "output_image_height: 384\n",
            "",
            "augmentation_config.preprocessing.output_image_height: must be > 0 (0)",
        ),
        (
            "output_image_channel: 3",
            "output_image_channel: 4",
            "augmentation_config.preprocessing.output_image_channel: must be one of 1, 3 (4)",
        ),
        (
            "zoom_min: 1.0",
            "zoom_min: 1.5",
            "augmentation_config.spatial_augmentation.zoom_min: must be <= zoom_max (1.5 > 1)",
        ),
        (
            "hue_rotation_max: 25.0",
            "hue_rotation_max: -1",
            "augmentation_config.color_augmentation.hue_rotation_max: must be >= 0 (-1)",
        ),
        (
            'name: "cov"',
            'name: "covv"',
            [
                f'{TC0}.objectives[0].name: must be one of "cov", "bbox" ("covv")',
                f"{TC0}.objectives: needs objectives cov and bbox (missing cov)",
            ],
        ),
        (
            "coverage_foreground_weight: 0.05",
            "coverage_foreground_weight: 1.5",
            f"{TC0}.coverage_foreground_weight: must be in [0, 1] (1.5)",
        ),
        (
            'name: "pedestrian"',
            'name: "car"',
            'cost_function_config.target_classes[1].name: duplicate target class "car"',
        ),
        (
            CAR_RASTER,
            "",
            "bbox_rasterizer_config.target_class_config: has no entry for target class "
            '"pedestrian"',
        ),
        (
            "cov_radius_x: 0.4",
            "cov_radius_x: 0",
            'bbox_rasterizer_config.target_class_config["car"].cov_radius_x: must be in (0, 1] (0)',
        ),
        (
            "deadzone_radius: 0.67",
            "deadzone_radius: 1.2",
            "bbox_rasterizer_config.deadzone_radius: must be in [0, 1] (1.2)",
        ),
        (
            'key: "pedestrian"\n    value: 0.5',
            'key: "person"\n    value: 0.5',
            "evaluation_config.minimum_detection_ground_truth_overlap: has no entry for target "
            'class "pedestrian"',
        ),
        (
            "value: 0.7",
            "value: 1.7",
            'evaluation_config.minimum_detection_ground_truth_overlap["car"]: must be in '
            "[0, 1] (1.7)",
        ),
        (
            "minimum_height: 40",
            "minimum_height: 99999",
            'evaluation_config.evaluation_box_config["car"].minimum_height: must be <= '
            "maximum_height (99999 > 9999)",
        ),
        # TAO's quirk, kept: first_validation_epoch must be > 0.
        (
            "first_validation_epoch: 110",
            "first_validation_epoch: 0",
            "evaluation_config.first_validation_epoch: must be > 0 (0)",
        ),
        # TAO's quirk, kept: cost-scaling parameters must be > 0 even when disabled.
        (
            "initial_exponent: 20.0",
            "initial_exponent: 0.0",
            "training_config.cost_scaling.initial_exponent: must be > 0 (0)",
        ),
        (
            "beta2: 0.999",
            "beta2: 1.0",
            "training_config.optimizer.adam.beta2: must be in (0, 1) (1)",
        ),
        (
            "batch_size_per_gpu: 8",
            "batch_size_per_gpu: 0",
            "training_config.batch_size_per_gpu: must be > 0 (0)",
        ),
        ("weight: 3e-9", "weight: -1", "training_config.regularizer.weight: must be >= 0 (-1)"),
        (
            "value: { coverage_threshold: 0.005 }",
            "value: { coverage_threshold: 5 }",
            'training_config.visualizer.target_class_config["car"].coverage_threshold: must be in '
            "[0, 1] (5)",
        ),
        (
            'arch: "resnet"',
            'arch: "resnet50"',
            'model_config.arch: must be one of "resnet", '
            '"vgg", "darknet", "mobilenet_v1", "mobilenet_v2", "squeezenet", "googlenet", '
            '"efficientnet_b0" ("resnet50")',
        ),
        ("scale: 35.0", "scale: 0", "model_config.objective_set.bbox.scale: must be > 0 (0)"),
        (
            "use_batch_norm: true",
            "use_batch_norm: true\n  load_graph: true",
            "model_config.pretrained_model_file: is required when load_graph is set",
        ),
        (
            "use_batch_norm: true",
            "use_batch_norm: true\n  freeze_blocks: [0, 5]\n  pretrained_model_file: 'a.hdf5'",
            "model_config.freeze_blocks[1]: must be a block id 0..4 (5)",
        ),
        (
            'key: "pedestrian"\n      value: "pedestrian"',
            'key: "pedestrian"\n      value: "person"',
            "dataset_config.target_class_mapping: maps no source class to target class "
            '"pedestrian"',
        ),
        (
            'key: "van"',
            'key: "Van"',
            'dataset_config.target_class_mapping["Van"]: key must be '
            "lower-case (dataset_convert lower-cases class names)",
        ),
        (
            'image_extension: "png"',
            'image_extension: ".png"',
            'dataset_config.image_extension: must not start with "." (TAO appends "." + '
            'image_extension) (".png")',
        ),
        (
            'tfrecords_path: "/workspace/tao-experiments/data/tfrecords/kitti_trainval/*"',
            'tfrecords_path: ""',
            "dataset_config.data_sources[0].tfrecords_path: must not be empty",
        ),
        (
            "minimum_bounding_box_height: 20",
            "minimum_bounding_box_height: 20\n"
            '      }\n      confidence_config {\n        confidence_model_filename: "car.uff"',
            'postprocessing_config.target_class_config["car"].confidence_config.'
            "confidence_model_filename: confidence models are not supported (TAO disables them "
            'too) ("car.uff")',
        ),
    ],
)
def test_broken_experiment_gives_field_path_message(old, new, expected):
    expected = [expected] if isinstance(expected, str) else expected
    assert errors_of(edit(DEFAULT, old, new)) == [f"spec.txt: {e}" for e in expected]


def test_extra_postprocessing_entries_are_allowed_but_checked():
    # default_spec's "cyclist" entry is not a target class: allowed, yet its values are checked.
    cyclist = DEFAULT.index('key: "cyclist"')
    text = DEFAULT[:cyclist] + edit(DEFAULT[cyclist:], "dbscan_eps: 0.13", "dbscan_eps: 2")
    assert errors_of(text) == [
        'spec.txt: postprocessing_config.target_class_config["cyclist"].clustering_config.'
        "dbscan_eps: must be in [0, 1] (2)"
    ]


def test_objectives_must_include_cov_and_bbox():
    text = edit(DEFAULT, 'name: "bbox"', 'name: "cov"')
    assert errors_of(text) == [
        f'spec.txt: {TC0}.objectives[1].name: duplicate objective "cov"',
        f"spec.txt: {TC0}.objectives: needs objectives cov and bbox (missing bbox)",
    ]


def test_missing_required_messages():
    text = edit(DEFAULT, "  optimizer {\n    adam {", "  optimizer {\n    unused_adam {")
    text = text.replace(
        "unused_adam {\n      epsilon: 1e-08\n      beta1: 0.9\n      beta2: 0.999\n    }\n", ""
    )
    assert errors_of(text) == ["spec.txt: training_config.optimizer.adam: is required"]
    message = parse_spec_text(DEFAULT, experiment_pb2.Experiment)
    message.ClearField("evaluation_config")
    message.training_config.ClearField("learning_rate")
    assert collect_errors(message, "experiment", "s.txt") == [
        "s.txt: evaluation_config: is required",
        "s.txt: training_config.learning_rate: is required",
    ]


def test_learning_rate_schedule_must_be_chosen():
    message = parse_spec_text(DEFAULT, experiment_pb2.Experiment)
    message.training_config.learning_rate.SetInParent()
    message.training_config.learning_rate.ClearField("soft_start_annealing_schedule")
    errors = collect_errors(message, "experiment", "s.txt")
    assert errors == [
        "s.txt: training_config.learning_rate: needs soft_start_annealing_schedule "
        "or early_stopping_annealing_schedule"
    ]


def test_early_stopping_schedule_rules():
    old = (
        "soft_start_annealing_schedule {\n      min_learning_rate: 5e-6\n      "
        "max_learning_rate: 5e-4\n      soft_start: 0.1\n      annealing: 0.7"
    )
    new = (
        "early_stopping_annealing_schedule {\n      min_learning_rate: 5e-6\n"
        "      max_learning_rate: 5e-4\n      soft_start_epochs: 5\n      annealing_epochs: 3"
    )
    assert errors_of(edit(DEFAULT, old, new)) == [
        "spec.txt: training_config.learning_rate.early_stopping_annealing_schedule."
        "soft_start_epochs: must be <= annealing_epochs (5 > 3)"
    ]


def test_all_errors_collected_in_spec_order_and_raised_once(tmp_path):
    text = edit(DEFAULT, "soft_start: 0.1", "soft_start: 0.9")
    text = edit(text, "output_image_width: 1248", "output_image_width: 1250")
    text = edit(text, "deadzone_radius: 0.67", "deadzone_radius: 1.67")
    path = tmp_path / "spec.txt"
    path.write_text(text)
    with pytest.raises(SpecValidationError) as info:
        load_experiment_spec(path)
    err = info.value
    assert isinstance(err, SpecError)
    assert [e.split(": ")[1] for e in err.errors] == [  # Experiment field order
        "augmentation_config.preprocessing.output_image_width",
        f"{LR}.soft_start",
        "bbox_rasterizer_config.deadzone_radius",
    ]
    assert str(err) == f"{err.errors[0]} (and 2 more errors)"
    assert str(err).startswith(f"{path}: augmentation_config")


def test_validate_returns_valid_message():
    message = parse_spec_text(QAT, experiment_pb2.Experiment)
    assert validate(message, "experiment", "q.txt") is message


# -- dataset_export ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "num_partitions: 2",
            "num_partitions: 3",
            "kitti_config.num_partitions: must be 2 in random partition mode "
            "(validation + training) (3)",
        ),
        ("val_split: 14", "val_split: 100", "kitti_config.val_split: must be in [0, 100) (100)"),
        (
            'partition_mode: "random"',
            'partition_mode: "sequence"',
            "kitti_config.kitti_sequence_to_frames_file: is required in sequence partition mode",
        ),
        (
            '  partition_mode: "random"\n',
            "",
            'kitti_config.partition_mode: must be one of "random", "sequence" ("")',
        ),
        (
            'image_extension: ".png"',
            'image_extension: "png"',
            'kitti_config.image_extension: must start with "." (e.g. ".png") ("png")',
        ),
        (
            'label_dir_name: "label_2"',
            'label_dir_name: ""',
            "kitti_config.label_dir_name: must not be empty",
        ),
        (
            'image_directory_path: "/workspace/tao-experiments/data/training"',
            'image_directory_path: "x"\nsample_modifier_config { '
            'minimum_target_class_imbalance { key: "car" value: 0 } }',
            'sample_modifier_config.minimum_target_class_imbalance["car"]: must be > 0 (0)',
        ),
    ],
)
def test_broken_kitti_export_spec(old, new, expected):
    assert errors_of(edit(KITTI, old, new), "dataset_export") == [f"spec.txt: {expected}"]


def test_export_spec_needs_a_source_config():
    assert errors_of('image_directory_path: "/data"\n', "dataset_export") == [
        "spec.txt: kitti_config: is required (or coco_config)"
    ]


def test_kitti_sequence_mode_allows_any_partition_count():
    text = edit(
        KITTI,
        'partition_mode: "random"',
        'partition_mode: "sequence"\n  kitti_sequence_to_frames_file: "seq.json"',
    )
    assert errors_of(edit(text, "num_partitions: 2", "num_partitions: 5"), "dataset_export") == []


def test_broken_coco_export_spec():
    text = edit(COCO, "num_shards: [4, 16]", "num_shards: [4, 16, 2]")
    text = edit(text, 'img_dir_names: ["val2017", "train2017"]', 'img_dir_names: ["val2017"]')
    assert errors_of(text, "dataset_export") == [
        "spec.txt: coco_config.img_dir_names: needs one entry per partition (1 != 2)",
        "spec.txt: coco_config.num_shards: needs 1 value or one per partition (3 values, "
        "2 partitions)",
    ]
    assert errors_of(edit(COCO, "num_shards: [4, 16]", "num_shards: 8"), "dataset_export") == []


# -- inference -----------------------------------------------------------------------------------
HANDLER = "bbox_handler_config.classwise_bbox_handler_config"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "image_width: 1248",
            "image_width: 1250",
            "inferencer_config.image_width: must be 0 (default) or a positive multiple of 16 "
            "(1250)",
        ),
        (
            "image_channels: 3",
            "image_channels: 2",
            "inferencer_config.image_channels: must be one of 0, 1, 3 (2)",
        ),
        ("batch_size: 4", "batch_size: -1", "inferencer_config.batch_size: must be >= 0 (-1)"),
        (
            "image_channels: 3",
            "image_channels: 3\n  stride: 8",
            "inferencer_config.stride: must be one of 0, 16 (8)",
        ),
        (
            'tlt_config {\n    model: "results/weights/model.hdf5"\n  }',
            "",
            "inferencer_config: needs tlt_config or tensorrt_config",
        ),
        (
            "key: 'pedestrian'",
            "key: 'person'",
            "bbox_handler_config.classwise_bbox_handler_config: has no entry for target class "
            '"pedestrian"',
        ),
        (
            '"aggregate_cov"',
            '"max_cov"',
            f'{HANDLER}["car"].confidence_model: must be one of "aggregate_cov", "mean_cov" '
            '("max_cov")',
        ),
        (
            "R: 0 G: 255",
            "R: 300 G: 255",
            f'{HANDLER}["car"].bbox_color.R: must be in [0, 255] (300)',
        ),
        (
            "nms_iou_threshold: 0.5",
            "nms_iou_threshold: 1.5",
            f'{HANDLER}["pedestrian"].clustering_config.nms_iou_threshold: must be in [0, 1] (1.5)',
        ),
        (
            "overlay_linewidth: 2",
            'overlay_linewidth: 2\n  postproc_classes: "bus"',
            'bbox_handler_config.postproc_classes[0]: "bus" is not a target class',
        ),
    ],
)
def test_broken_inference_spec(old, new, expected):
    assert errors_of(edit(INFERENCE, old, new), "inference") == [f"spec.txt: {expected}"]


def test_inference_zero_sizes_mean_defaults_and_min_samples_unrestricted():
    text = edit(INFERENCE, "image_width: 1248\n  image_height: 384\n", "")
    text = edit(text, "dbscan_min_samples: 1", "dbscan_min_samples: 3")
    assert errors_of(text, "inference") == []


def test_inference_needs_classes_and_both_messages():
    assert errors_of("inferencer_config { tlt_config { model: 'm' } }", "inference") == [
        "spec.txt: inferencer_config.target_classes: at least one target class is required",
        "spec.txt: bbox_handler_config: is required",
    ]


def test_loss_mask_label_filter_rules():
    text = DEFAULT + (
        "loss_mask_label_filter {\n  mask_multiplier: -1\n  objective_label_filter_configs {\n"
        '    target_class_names: ["car", "truck"]\n    objective_names: ["cov", "depth"]\n'
        "    label_filter { bbox_dimensions_label_filter { max_height: 20 } }\n  }\n}\n"
    )
    path = "loss_mask_label_filter"
    assert errors_of(text) == [
        f"spec.txt: {path}.mask_multiplier: must be >= 0 (-1)",
        f'spec.txt: {path}.objective_label_filter_configs[0].target_class_names[1]: "truck" is '
        "not a target class",
        f"spec.txt: {path}.objective_label_filter_configs[0].objective_names[1]: must be one of "
        '"cov", "bbox" ("depth")',
    ]


def test_model_precision_and_dropout_rules():
    text = edit(
        DEFAULT,
        'arch: "resnet"',
        'arch: "resnet"\n  dropout_rate: 1.5\n  training_precision { backend_floatx: INVALID }',
    )
    assert errors_of(text) == [
        "spec.txt: model_config.dropout_rate: must be in [0, 1] (1.5)",
        "spec.txt: model_config.training_precision.backend_floatx: must be FLOAT32 or FLOAT16",
    ]

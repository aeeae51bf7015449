"""Loading TAO text-format specs: the shared real specs, syntax features, errors, kind detection."""

import pytest
from spec_testing import (
    COCO_EXPORT_SPEC,
    DEFAULT_SPEC,
    INFERENCE_SPEC,
    KITTI_EXPORT_SPEC,
    QAT_SPEC,
    SPECS,
    edit,
)

from tao_qat.common.errors import SpecError
from tao_qat.spec.loader import (
    detect_spec_kind,
    load_dataset_export_spec,
    load_experiment_spec,
    load_inference_spec,
    load_spec,
    parse_spec_text,
    top_level_field_names,
)
from tao_qat.spec.proto import dataset_export_config_pb2, experiment_pb2, inference_pb2

Experiment = experiment_pb2.Experiment


def test_shared_specs_are_verbatim_copies():
    sources = (SPECS / "SOURCES.txt").read_text()
    for spec in (DEFAULT_SPEC, QAT_SPEC, KITTI_EXPORT_SPEC):
        assert spec.name in sources


def test_default_spec_values():
    spec = load_experiment_spec(DEFAULT_SPEC)
    assert spec.random_seed == 42
    assert spec.bbox_rasterizer_config.deadzone_radius == pytest.approx(0.67)
    assert [t.name for t in spec.cost_function_config.target_classes] == ["car", "pedestrian"]
    # cyclist has a postprocessing entry although it is not a target class.
    assert sorted(spec.postprocessing_config.target_class_config) == [
        "car",
        "cyclist",
        "pedestrian",
    ]
    assert dict(spec.dataset_config.target_class_mapping) == {
        "car": "car",
        "van": "car",
        "pedestrian": "pedestrian",
    }
    assert spec.cost_function_config.enable_autoweighting is True  # written as `True`
    assert spec.training_config.cost_scaling.enabled is False  # written as `False`
    assert spec.training_config.regularizer.type == spec.training_config.regularizer.L1
    assert spec.training_config.regularizer.weight == pytest.approx(3e-9)
    ev = spec.evaluation_config
    assert ev.average_precision_mode == ev.INTEGRATE
    assert ev.evaluation_box_config["pedestrian"].minimum_height == 25
    assert ev.minimum_detection_ground_truth_overlap["car"] == pytest.approx(0.7)
    viz = spec.training_config.visualizer.target_class_config  # `value: { ... }` one-liner
    assert viz["car"].coverage_threshold == pytest.approx(0.005)


def test_qat_spec_values():
    spec = load_experiment_spec(QAT_SPEC)
    assert spec.training_config.enable_qat is True
    assert spec.model_config.load_graph is True
    assert spec.model_config.pretrained_model_file.endswith("_pruned.hdf5")
    assert [t.name for t in spec.cost_function_config.target_classes] == [
        "car",
        "cyclist",
        "pedestrian",
    ]
    assert spec.cost_function_config.target_classes[1].class_weight == 8.0
    # long float literal 0.699999988079 -> float32 0.7
    lr = spec.training_config.learning_rate.soft_start_annealing_schedule
    assert lr.annealing == pytest.approx(0.7)
    assert lr.min_learning_rate == pytest.approx(5e-7)
    assert list(spec.training_config.visualizer.clearml_config.tags) == [
        "detectnet_v2",
        "training",
        "resnet18",
        "pruned",
        "qat",
    ]
    assert len(spec.dataset_config.target_class_mapping) == 5


def test_kitti_export_spec_values():
    spec = load_dataset_export_spec(KITTI_EXPORT_SPEC)
    kitti = spec.kitti_config
    assert spec.WhichOneof("convert_config_type") == "kitti_config"
    assert (kitti.image_dir_name, kitti.label_dir_name) == ("image_2", "label_2")
    assert (kitti.partition_mode, kitti.num_partitions, kitti.num_shards) == ("random", 2, 10)
    assert kitti.val_split == 14.0
    assert kitti.image_extension == ".png"


def test_own_example_specs_load():
    inference = load_inference_spec(INFERENCE_SPEC)
    assert list(inference.inferencer_config.target_classes) == ["car", "pedestrian"]
    handler = inference.bbox_handler_config.classwise_bbox_handler_config
    assert handler["car"].bbox_color.G == 255
    assert handler["pedestrian"].output_map == "person"  # key given as 'pedestrian'
    coco = load_dataset_export_spec(COCO_EXPORT_SPEC).coco_config
    assert list(coco.num_shards) == [4, 16]


# -- syntax features real specs use ------------------------------------------------------------
@pytest.mark.parametrize(
    "text, check",
    [
        ("# comment\nrandom_seed: 7  # trailing comment\n", lambda m: m.random_seed == 7),
        ("training_config { enable_qat: True }", lambda m: m.training_config.enable_qat),
        ("training_config { enable_qat: true }", lambda m: m.training_config.enable_qat),
        ("training_config { enable_qat: False }", lambda m: not m.training_config.enable_qat),
        (
            "dataset_config { image_extension: 'png' }",
            lambda m: m.dataset_config.image_extension == "png",
        ),
        (
            "model_config { freeze_blocks: [0, 1] }",
            lambda m: list(m.model_config.freeze_blocks) == [0.0, 1.0],
        ),
        (
            'dataset_config { target_class_mapping { key: "a" value: "b" } }',
            lambda m: m.dataset_config.target_class_mapping["a"] == "b",
        ),
        (
            'dataset_config { target_class_mapping { key:"a"\n value: "b" } }',
            lambda m: m.dataset_config.target_class_mapping["a"] == "b",
        ),
        (
            'postprocessing_config { target_class_config { key: "car" value: {\n'
            "  clustering_config { dbscan_eps: 0.2 } } } }",
            lambda m: (
                m.postprocessing_config.target_class_config["car"].clustering_config.dbscan_eps
                == pytest.approx(0.2)
            ),
        ),
        (
            'postprocessing_config { target_class_config { key: "car" value {\n'
            "  clustering_config { clustering_algorithm: NMS } } } }",
            lambda m: (
                m.postprocessing_config.target_class_config[
                    "car"
                ].clustering_config.clustering_algorithm
                == 1
            ),
        ),
        (
            "bbox_rasterizer_config { deadzone_radius: 0.400000154972 }   \n\t\n",
            lambda m: m.bbox_rasterizer_config.deadzone_radius == pytest.approx(0.4000002),
        ),
        (
            "training_config { visualizer{ enabled: true } }",
            lambda m: m.training_config.visualizer.enabled,
        ),
        ('model_config: { arch: "resnet" }', lambda m: m.model_config.arch == "resnet"),
        ('model_config < arch: "vgg" >', lambda m: m.model_config.arch == "vgg"),
        ("", lambda m: m == Experiment()),
    ],
)
def test_text_format_features(text, check):
    assert check(parse_spec_text(text, Experiment, "s.txt"))


# -- syntax errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "random_seed: 1\nmodel_config { foo: 1 }",
            's.txt:2:16: Message type "ModelConfig" has no field named "foo"',
        ),
        (
            'model_config {\n  arhc: "resnet"\n}',
            's.txt:2:3: Message type "ModelConfig" has no field named "arhc" '
            '(did you mean "arch"?)',
        ),
        (
            "training_config {\n  regularizer { type: L3 }\n}",
            's.txt:2:23: Enum type "RegularizerConfig.RegularizationType" has no value named L3',
        ),
        (
            "random_seed: 1\nrandom_seed: 2",
            's.txt:2:14: Message type "Experiment" should not have multiple "random_seed" fields',
        ),
        ('model_config {\n  num_layers: "x"\n}', 's.txt:2:15: Couldn\'t parse integer: "x"'),
        ("random_seed: -1", "s.txt:1:14: Value out of range: -1"),
        # End of file: text_format reports the position of the last token.
        ('model_config {\n  arch: "resnet"\n', 's.txt:2:9: Expected "}"'),
        (
            "dataset_config {\n  validation_fold: 0\n  validation_data_source { }\n}",
            's.txt:3:3: Field "validation_data_source" is specified along with field '
            '"validation_fold", another member of oneof "dataset_split_type" for message type '
            '"DatasetConfig"',
        ),
    ],
)
def test_syntax_errors_name_file_line_column(text, expected):
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, Experiment, "s.txt")
    assert str(info.value) == expected
    assert "\n" not in str(info.value)


def test_syntax_error_in_real_spec_points_at_the_line(tmp_path):
    text = DEFAULT_SPEC.read_text()
    broken = edit(text, "deadzone_radius: 0.67", "deadzone_radius 0.67 0.5")
    line = broken[: broken.index("deadzone_radius")].count("\n") + 1
    path = tmp_path / "broken.txt"
    path.write_text(broken)
    with pytest.raises(SpecError, match=rf"^{path}:{line}:\d+: "):
        load_experiment_spec(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SpecError, match="nope.txt: spec file not found"):
        load_spec(tmp_path / "nope.txt")
    with pytest.raises(SpecError, match="not a file"):
        load_spec(tmp_path)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"random_seed: 1\n\xff\xfe")
    with pytest.raises(SpecError, match="not a UTF-8 text file"):
        load_spec(binary)


# -- kind detection ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, kind, cls",
    [
        (DEFAULT_SPEC, "experiment", experiment_pb2.Experiment),
        (QAT_SPEC, "experiment", experiment_pb2.Experiment),
        (KITTI_EXPORT_SPEC, "dataset_export", dataset_export_config_pb2.DatasetExportConfig),
        (COCO_EXPORT_SPEC, "dataset_export", dataset_export_config_pb2.DatasetExportConfig),
        (INFERENCE_SPEC, "inference", inference_pb2.Inference),
    ],
)
def test_load_spec_detects_kind(path, kind, cls):
    detected, message = load_spec(path)
    assert detected == kind
    assert isinstance(message, cls)
    assert load_spec(path, kind=kind)[0] == kind


def test_kind_detection_reports_the_error_of_the_best_matching_kind():
    # Top-level names say "experiment"; the typo is deep inside, on line 3.
    text = 'random_seed: 1\nmodel_config {\n  arch: "resnet"\n  num_layrs: 18\n}\n'
    with pytest.raises(SpecError, match=r'^s.txt:4:3: Message type "ModelConfig"'):
        detect_spec_kind(text, "s.txt")
    # Inference fields, bad one at the top: still judged as an inference spec.
    text = "inferencer_config { batch_size: 1 }\nbbox_handler_config { kitti_dmp: true }\n"
    with pytest.raises(SpecError, match=r'"BboxHandlerConfig" has no field named "kitti_dmp"'):
        detect_spec_kind(text, "s.txt")


def test_kind_detection_of_unrelated_and_empty_files():
    with pytest.raises(SpecError, match=r'^s.txt:1:1: not a TAO spec: "hello" is not a top-level'):
        detect_spec_kind("hello: 1\n", "s.txt")
    with pytest.raises(SpecError, match="spec sets no fields, cannot tell its kind"):
        detect_spec_kind("# only a comment\n", "s.txt")


def test_wrong_explicit_kind_is_a_syntax_error(tmp_path):
    with pytest.raises(SpecError, match='"Inference" has no field named "kitti_config"'):
        load_spec(KITTI_EXPORT_SPEC, kind="inference")
    with pytest.raises(SpecError, match="unknown spec kind 'bogus'"):
        load_spec(KITTI_EXPORT_SPEC, kind="bogus")


def test_top_level_field_names():
    text = 'a: 1\nb { c: 2 d { e: 3 } }\nf: { g: "h{" }\n# i: 4\nj < k: 1 >'
    assert top_level_field_names(text) == ["a", "b", "f", "j"]


def test_validate_false_skips_validation(tmp_path):
    path = tmp_path / "e.txt"
    path.write_text("random_seed: 3\n")
    assert load_experiment_spec(path, validate=False).random_seed == 3
    with pytest.raises(SpecError, match="dataset_config: is required"):
        load_experiment_spec(path)

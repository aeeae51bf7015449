"""Generated *_pb2 modules match the .proto files and TAO's field numbers (digest §1, §9, §10)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tao_qat.spec import generate

PROTO_DIR = Path(generate.__file__).parent / "proto"


def test_every_proto_has_a_committed_module():
    protos = sorted(p.stem for p in PROTO_DIR.glob("*.proto"))
    modules = sorted(p.name[: -len("_pb2.py")] for p in PROTO_DIR.glob("*_pb2.py"))
    assert protos == modules
    assert len(protos) == 26  # 24 detectnet_v2 files + wandb_config + clearml_config


def test_generated_modules_have_not_drifted(tmp_path):
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        pytest.skip("grpcio-tools is not installed: cannot regenerate the *_pb2.py modules")
    # protoc runs in its own process: in a process that already loaded TensorFlow, the
    # in-process grpc_tools protoc can crash (segmentation fault seen here).
    subprocess.run([sys.executable, "-m", "tao_qat.spec.generate", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    written = sorted((tmp_path / "tao_qat" / "spec" / "proto").glob("*_pb2.py"))
    assert len(written) == 26
    stale = [p.name for p in written if p.read_bytes() != (PROTO_DIR / p.name).read_bytes()]
    assert not stale, f"regenerate with `python -m tao_qat.spec.generate`: {stale}"


@pytest.mark.parametrize(
    "module, message, fields",
    [
        (
            "experiment",
            "Experiment",
            {
                "random_seed": 1,
                "cost_function_config": 8,
                "bbox_rasterizer_config": 10,
                "dataset_export_config": 12,
            },
        ),
        (
            "augmentation_config",
            "AugmentationConfig.Preprocessing",
            {"output_image_width": 1, "output_image_channel": 13, "enable_auto_resize": 16},
        ),
        (
            "augmentation_config",
            "AugmentationConfig.ColorAugmentation",
            {"contrast_scale_max": 5, "contrast_center": 8},
        ),
        ("model_config", "ModelConfig", {"arch": 13, "load_graph": 14, "all_projections": 15}),
        ("training_config", "TrainingConfig", {"enable_qat": 8, "visualizer": 9}),
        ("evaluation_config", "EvaluationConfig", {"early_stopping_patience_steps": 6}),
        ("postprocessing_config", "ClusteringConfig", {"nms_confidence_threshold": 9}),
        ("kitti_config", "KITTIConfig", {"partition_mode": 10, "val_split": 11}),
        ("inferencer_config", "InferencerConfig", {"target_classes": 10, "stride": 11}),
        ("inference", "ClasswiseBboxHandlerConfig", {"bbox_color": 7}),
        ("label_filter", "LabelFilter.SourceClassLabelFilter", {"source_class_names": 4}),
    ],
)
def test_field_numbers_match_tao(module, message, fields):
    pb2 = importlib.import_module(f"tao_qat.spec.proto.{module}_pb2")
    descriptor = pb2.DESCRIPTOR.message_types_by_name[message.split(".")[0]]
    for nested in message.split(".")[1:]:
        descriptor = descriptor.nested_types_by_name[nested]
    assert {name: descriptor.fields_by_name[name].number for name in fields} == fields


def test_oneofs_and_maps_as_in_tao():
    from tao_qat.spec.proto import (
        dataset_config_pb2,
        dataset_export_config_pb2,
        inferencer_config_pb2,
        learning_rate_config_pb2,
    )

    def oneof(cls, name):
        return sorted(f.name for f in cls.DESCRIPTOR.oneofs_by_name[name].fields)

    assert oneof(dataset_config_pb2.DatasetConfig, "dataset_split_type") == [
        "validation_data_source",
        "validation_fold",
    ]
    assert oneof(dataset_export_config_pb2.DatasetExportConfig, "convert_config_type") == [
        "coco_config",
        "kitti_config",
    ]
    assert oneof(inferencer_config_pb2.InferencerConfig, "model_config_type") == [
        "tensorrt_config",
        "tlt_config",
    ]
    assert oneof(learning_rate_config_pb2.LearningRateConfig, "learning_rate") == [
        "early_stopping_annealing_schedule",
        "soft_start_annealing_schedule",
    ]
    mapping = dataset_config_pb2.DatasetConfig.DESCRIPTOR.fields_by_name["target_class_mapping"]
    assert mapping.message_type.GetOptions().map_entry


def test_package_is_tao_qat_spec():
    from tao_qat.spec.proto import experiment_pb2

    assert experiment_pb2.Experiment.DESCRIPTOR.full_name == "tao_qat.spec.Experiment"

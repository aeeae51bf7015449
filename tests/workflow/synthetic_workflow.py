"""Builds a tiny synthetic DetectNet_v2 project for workflow tests: KITTI images + labels,
TFRecords (through the real ``dataset_convert``), and experiment / inference spec files."""

from pathlib import Path

from tao_qat.data.convert import run_dataset_convert
from tao_qat.data.synthetic import write_synthetic_kitti

CLASSES = ("car", "person")


def _class_blocks(template, classes, **values):
    return "\n".join(template.format(name=name, **values) for name in classes)


RASTER = """  target_class_config {{ key: "{name}" value {{ cov_center_x: 0.5 cov_center_y: 0.5
    cov_radius_x: 0.8 cov_radius_y: 0.8 bbox_min_radius: 1.0 }} }}"""
COST = """  target_classes {{ name: "{name}" class_weight: 1.0
    coverage_foreground_weight: {fg_weight}
    objectives {{ name: "cov" initial_weight: 1.0 weight_target: 1.0 }}
    objectives {{ name: "bbox" initial_weight: 10.0 weight_target: 10.0 }} }}"""
POST = """  target_class_config {{ key: "{name}" value {{ clustering_config {{
    clustering_algorithm: NMS coverage_threshold: 0.1 nms_iou_threshold: 0.3
    nms_confidence_threshold: 0.1 dbscan_eps: 0.3 dbscan_min_samples: 1
    minimum_bounding_box_height: 4 }} }} }}"""
IOU = """  minimum_detection_ground_truth_overlap {{ key: "{name}" value: 0.5 }}
  evaluation_box_config {{ key: "{name}" value {{ minimum_height: 4 maximum_height: 9999
    minimum_width: 4 maximum_width: 9999 }} }}"""
MAPPING = """  target_class_mapping {{ key: "{name}" value: "{name}" }}"""
HANDLER = """  classwise_bbox_handler_config {{ key: "{name}" value {{
    confidence_model: "aggregate_cov"
    clustering_config {{ clustering_algorithm: NMS coverage_threshold: 0.1
      nms_iou_threshold: 0.3 nms_confidence_threshold: 0.1 dbscan_eps: 0.3
      dbscan_min_samples: 1 minimum_bounding_box_height: 4 }} }} }}"""


def experiment_spec_text(
    *,
    width,
    height,
    epochs,
    batch_size=4,
    num_layers=10,
    classes=CLASSES,
    max_lr=5e-3,
    checkpoint_interval=1,
    first_validation_epoch=1,
    validation_period=1,
    seed=7,
    pretrained_model_file=None,
    load_graph=False,
    fg_weight=0.5,
    autoweighting=False,
):
    """An experiment spec for the records written by ``make_synthetic_project``."""
    pretrained = ""
    if pretrained_model_file:
        pretrained = (
            f'  pretrained_model_file: "{pretrained_model_file}"\n'
            f"  load_graph: {'true' if load_graph else 'false'}\n"
        )
    return f"""random_seed: {seed}
dataset_config {{
  data_sources {{ tfrecords_path: "records/train*" image_directory_path: "kitti/train" }}
  validation_data_source {{ tfrecords_path: "records/val*" image_directory_path: "kitti/val" }}
  image_extension: "png"
{_class_blocks(MAPPING, classes)}
}}
augmentation_config {{
  preprocessing {{ output_image_width: {width} output_image_height: {height}
    output_image_channel: 3 min_bbox_width: 1.0 min_bbox_height: 1.0 }}
  spatial_augmentation {{ hflip_probability: 0.5 zoom_min: 1.0 zoom_max: 1.0
    translate_max_x: 4.0 translate_max_y: 4.0 }}
}}
model_config {{
{pretrained}  num_layers: {num_layers}
  use_batch_norm: true
  all_projections: true
  objective_set {{ bbox {{ scale: 35.0 offset: 0.5 }} cov {{ }} }}
  arch: "resnet"
}}
bbox_rasterizer_config {{
{_class_blocks(RASTER, classes)}
  deadzone_radius: 0.67
}}
cost_function_config {{
{_class_blocks(COST, classes, fg_weight=fg_weight)}
  enable_autoweighting: {str(autoweighting).lower()}
  max_objective_weight: 0.9999
  min_objective_weight: 0.0001
}}
postprocessing_config {{
{_class_blocks(POST, classes)}
}}
training_config {{
  batch_size_per_gpu: {batch_size}
  num_epochs: {epochs}
  checkpoint_interval: {checkpoint_interval}
  learning_rate {{ soft_start_annealing_schedule {{ min_learning_rate: 1e-5
    max_learning_rate: {max_lr} soft_start: 0.1 annealing: 0.7 }} }}
  regularizer {{ type: L1 weight: 3e-9 }}
  optimizer {{ adam {{ epsilon: 1e-8 beta1: 0.9 beta2: 0.999 }} }}
  cost_scaling {{ initial_exponent: 20.0 increment: 0.005 decrement: 1.0 }}
}}
evaluation_config {{
  validation_period_during_training: {validation_period}
  first_validation_epoch: {first_validation_epoch}
{_class_blocks(IOU, classes)}
  average_precision_mode: INTEGRATE
}}
"""


def inference_spec_text(*, width, height, classes=CLASSES, model=None):
    model_line = f'  tlt_config {{ model: "{model or ""}" }}\n'
    targets = "\n".join(f'  target_classes: "{name}"' for name in classes)
    return f"""inferencer_config {{
{model_line}  batch_size: 2
  image_width: {width}
  image_height: {height}
  image_channels: 3
{targets}
}}
bbox_handler_config {{
  kitti_dump: true
  overlay_linewidth: 2
{_class_blocks(HANDLER, classes)}
}}
"""


def export_spec_text(split):
    return f"""kitti_config {{
  root_directory_path: "kitti/{split}"
  image_dir_name: "image_2"
  label_dir_name: "label_2"
  image_extension: ".png"
  partition_mode: "random"
  num_partitions: 2
  val_split: 0
  num_shards: 1
}}
image_directory_path: "kitti/{split}"
"""


def make_synthetic_project(
    root, *, num_train=32, num_val=8, width=64, height=64, classes=CLASSES, seed=0, **spec_args
):
    """Write KITTI data, TFRecords and ``experiment.txt`` / ``inference.txt`` under ``root``.

    Returns the experiment spec path. Spec paths are relative to ``root``.
    """
    root = Path(root)
    for split, count, split_seed in (("train", num_train, seed), ("val", num_val, seed + 1)):
        write_synthetic_kitti(
            root / "kitti" / split,
            count,
            image_size=(width, height),
            classes=classes,
            seed=split_seed,
            objects_per_image=(1, 2),
            box_size=(14, 28),
        )
        spec = root / f"export_{split}.txt"
        spec.write_text(export_spec_text(split))
        run_dataset_convert(spec, root / "records" / split)
    experiment = root / "experiment.txt"
    experiment.write_text(
        experiment_spec_text(width=width, height=height, classes=classes, **spec_args)
    )
    (root / "inference.txt").write_text(
        inference_spec_text(width=width, height=height, classes=classes)
    )
    return experiment

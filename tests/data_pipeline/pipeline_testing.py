"""Helpers for the input-pipeline tests: tiny image folders + TFRecords + Experiment specs.

Images are small (64 x 48) black PNGs with white filled boxes, so a box's pixels are known
exactly; records are written with the project's own TFRecord writer.
"""

from pathlib import Path

import numpy as np
from google.protobuf import text_format
from PIL import Image

from tao_qat.data.kitti import Frame, KittiObject
from tao_qat.data.tfrecord_writer import write_records
from tao_qat.spec.proto import experiment_pb2

IMAGE_W, IMAGE_H = 64, 48

# Every frame holds the same three objects (x2/y2 exclusive pixel bounds).
OBJECTS = (
    ("car", (5.0, 10.0, 25.0, 20.0)),
    ("dontcare", (40.0, 30.0, 50.0, 40.0)),
    ("Pedestrian", (30.0, 5.0, 40.0, 40.0)),
)

SPEC_TEMPLATE = """
random_seed: 42
dataset_config {{
  data_sources {{ tfrecords_path: "{tfrecords}" image_directory_path: "{images}" }}
  image_extension: "png"
  target_class_mapping {{ key: "car" value: "car" }}
  target_class_mapping {{ key: "pedestrian" value: "person" }}
  {validation}
}}
augmentation_config {{
  preprocessing {{ output_image_width: {width} output_image_height: {height}
                  output_image_channel: 3 {preprocessing} }}
  {augmentation}
}}
cost_function_config {{ target_classes {{ name: "person" }} target_classes {{ name: "car" }} }}
training_config {{ batch_size_per_gpu: 2 }}
"""

SPATIAL_AUGMENTATION = """
  spatial_augmentation { hflip_probability: 0.5 vflip_probability: 0.5 zoom_min: 0.7
    zoom_max: 1.3 translate_max_x: 6 translate_max_y: 6 rotate_rad_max: 0.5 }
"""
STRONG_AUGMENTATION = (
    SPATIAL_AUGMENTATION
    + """
  color_augmentation { color_shift_stddev: 0.1 hue_rotation_max: 25 saturation_shift_max: 0.2
    contrast_scale_max: 0.1 contrast_center: 0.5 }
"""
)


def draw_frame(path, objects=OBJECTS, size=(IMAGE_W, IMAGE_H)):
    """Write a black RGB PNG with each box filled white (pixels x1 <= x < x2, y1 <= y < y2)."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    for _, (x1, y1, x2, y2) in objects:
        image[int(y1) : int(y2), int(x1) : int(x2)] = 255
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


def write_dataset(root, num_frames=6, folds=(2, 4), objects=OBJECTS, size=(IMAGE_W, IMAGE_H)):
    """Write ``root/images/image_2/NNN.png`` and TFRecords ``root/tfrecords/train-fold-...``.

    Args:
        folds: number of frames per fold file (fold 0 first); () writes one file without fold.
    Returns:
        list of frame ids in write order.
    """
    root = Path(root)
    frames = []
    for index in range(num_frames):
        frame_id = f"image_2/{index:03d}"
        draw_frame(root / "images" / f"{frame_id}.png", objects, size)
        kitti = [KittiObject(name.lower(), box, source_class=name) for name, box in objects]
        frames.append(Frame(frame_id, size[0], size[1], kitti))
    records = root / "tfrecords"
    records.mkdir(parents=True, exist_ok=True)
    if not folds:
        write_records(records / "train", frames)
    start = 0
    for fold, count in enumerate(folds):
        name = f"train-fold-{fold:03d}-of-{len(folds):03d}"
        write_records(records / name, frames[start : start + count])
        start += count
    return [f.frame_id for f in frames]


def make_experiment(
    tfrecords="tfrecords/*",
    images="images",
    validation="validation_fold: 0",
    width=64,
    height=64,
    preprocessing="",
    augmentation="",
    extra="",
):
    """Experiment message from SPEC_TEMPLATE (paths relative to the dataset root)."""
    text = SPEC_TEMPLATE.format(
        tfrecords=tfrecords,
        images=images,
        validation=validation,
        width=width,
        height=height,
        preprocessing=preprocessing,
        augmentation=augmentation,
    )
    return text_format.Parse(text + extra, experiment_pb2.Experiment())

"""Input pipeline throughput: images/s of the augmented "train" split at 384 x 384.

    python benchmarks/bench_input_pipeline.py [--spec EXPERIMENT_SPEC] [--batches 100]

Without --spec, the vendored tree tiles (examples/trees/data/train, 384 x 384 JPEG) are
converted to TFRecords in a temporary folder with the project's dataset_convert, and an
experiment spec with every augmentation enabled (flips, translation, zoom, rotation, colour) is
written next to them. Prints the machine, then images/s (warm-up batches excluded) and the CPU
time the pipeline spends per image, with decoded images cached in memory and without.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = REPO / "examples" / "trees" / "data" / "train"

CONVERT_SPEC = """
kitti_config {{
  root_directory_path: "{root}"
  image_dir_name: "image_2"
  label_dir_name: "label_2"
  image_extension: ".jpg"
  partition_mode: "random"
  num_partitions: 2
  val_split: 0
}}
image_directory_path: "{root}"
"""

EXPERIMENT_SPEC = """
random_seed: 42
dataset_config {{
  data_sources {{ tfrecords_path: "tfrecords/trees*" image_directory_path: "{root}" }}
  image_extension: "jpg"
  target_class_mapping {{ key: "tree" value: "tree" }}
}}
augmentation_config {{
  preprocessing {{ output_image_width: 384 output_image_height: 384 output_image_channel: 3
                  min_bbox_width: 1.0 min_bbox_height: 1.0 }}
  spatial_augmentation {{ hflip_probability: 0.5 vflip_probability: 0.5 zoom_min: 0.8
    zoom_max: 1.25 translate_max_x: 16 translate_max_y: 16 rotate_rad_max: 0.3
    rotate_probability: 0.5 }}
  color_augmentation {{ color_shift_stddev: 0.05 hue_rotation_max: 25.0
    saturation_shift_max: 0.2 contrast_scale_max: 0.1 contrast_center: 0.5 }}
}}
cost_function_config {{ target_classes {{ name: "tree" }} }}
training_config {{ batch_size_per_gpu: 4 }}
"""

TRAINING_IMAGES_PER_S = 3.3  # ResNet-18 DetectNet_v2 training at 384 x 384 here (trials.md)


def machine_info():
    import numpy as np

    from tao_qat.common.tensorflow_setup import tf

    cpu = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} logical cores ({len(os.sched_getaffinity(0))} usable); "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, numpy {np.__version__}"
    )


def make_tree_spec(folder):
    """Convert the tree tiles into ``folder`` and write the experiment spec; returns its path."""
    from tao_qat.data.convert import run_dataset_convert

    folder = Path(folder)
    convert_spec = folder / "convert.txt"
    convert_spec.write_text(CONVERT_SPEC.format(root=TREES))
    run_dataset_convert(convert_spec, folder / "tfrecords" / "trees", force=True)
    spec = folder / "experiment.txt"
    spec.write_text(EXPERIMENT_SPEC.format(root=TREES))
    return spec


def measure(experiment, spec_dir, cache, batches, warmup):
    """Returns (images per second, CPU seconds per image) over ``batches`` after ``warmup``."""
    from tao_qat.data.pipeline import build_dataset

    dataset = build_dataset(experiment, "train", spec_dir=spec_dir, cache=cache)
    iterator = iter(dataset)
    for _ in range(warmup):
        batch = next(iterator)
    batch_size = int(batch["images"].shape[0])
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    images = batches * batch_size
    return images / wall, cpu / images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="experiment spec (default: the tree tiles, see above)")
    parser.add_argument("--batches", type=int, default=100, help="timed batches")
    parser.add_argument("--warmup", type=int, default=10, help="untimed batches first")
    args = parser.parse_args(argv)

    from tao_qat.spec.loader import load_experiment_spec

    print("machine:", machine_info())
    with tempfile.TemporaryDirectory(prefix="bench_input_") as folder:
        spec = Path(args.spec) if args.spec else make_tree_spec(folder)
        experiment = load_experiment_spec(spec, validate=False)
        size = experiment.augmentation_config.preprocessing
        print(
            f"spec: {args.spec or 'tree tiles (84 train images), full augmentation'}; "
            f"input {size.output_image_width}x{size.output_image_height}, batch "
            f"{experiment.training_config.batch_size_per_gpu}, {args.batches} batches timed "
            f"after {args.warmup} warm-up"
        )
        for cache in (True, False):
            rate, cpu = measure(experiment, spec.parent, cache, args.batches, args.warmup)
            share = TRAINING_IMAGES_PER_S * cpu
            print(
                f"cache={'on ' if cache else 'off'}: {rate:7.1f} images/s, {cpu * 1000:6.1f} ms "
                f"CPU per image ({share:.0%} of one core at {TRAINING_IMAGES_PER_S} img/s "
                f"training)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of ``qat train`` vs a bare Keras ``fit`` of the same model (issue: >= 0.9).

Both run in this process, one after the other, on the same machine:
  1. ``qat train`` (library call) on the vendored tree tiles with the example ResNet-18 spec for
     ``--epochs`` epochs; images/s of the epochs after the first (warm-up) from status.json.
  2. A bare ``keras.Model.fit`` of the same DetectNet_v2 (same input size, batch size, Adam) on
     in-memory random tensors with a plain MSE loss on both heads; images/s from the wall time
     of ``--steps`` steps after a warm-up epoch.

Usage: python benchmarks/bench_train_throughput.py [--epochs 3] [--steps 40] [--layers 18]
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "trees"


def qat_train_images_per_second(workdir, epochs, layers):
    from tao_qat.data.convert import run_dataset_convert
    from tao_qat.spec.loader import load_dataset_export_spec, load_experiment_spec
    from tao_qat.training.status import read_status
    from tao_qat.training.trainer import TrainOptions, run_train

    for split in ("train", "val"):
        spec = load_dataset_export_spec(EXAMPLE / "specs" / f"trees_tfrecords_{split}.txt")
        spec.kitti_config.root_directory_path = str(EXAMPLE / "data" / split)
        spec.image_directory_path = str(EXAMPLE / "data" / split)
        path = workdir / f"convert_{split}.txt"
        path.write_text(text_format.MessageToString(spec))
        run_dataset_convert(path, workdir / "tfrecords" / split / f"trees_{split}")
    spec = load_experiment_spec(EXAMPLE / "specs" / "trees_train_resnet18.txt")
    for source, split in ((spec.dataset_config.data_sources[0], "train"),
                          (spec.dataset_config.validation_data_source, "val")):
        source.tfrecords_path = str(workdir / "tfrecords" / split / f"trees_{split}*")
        source.image_directory_path = str(EXAMPLE / "data" / split)
    spec.model_config.num_layers = layers
    spec.training_config.num_epochs = epochs
    spec.evaluation_config.first_validation_epoch = epochs
    spec.evaluation_config.validation_period_during_training = epochs
    spec_path = workdir / "train.txt"
    spec_path.write_text(text_format.MessageToString(spec))
    run_train(TrainOptions(spec_path=str(spec_path), results_dir=str(workdir / "results"),
                           echo=lambda _: None))
    records = [r for r in read_status(workdir / "results" / "status.json") if r.get("epoch")]
    rates = [r["images_per_second"] for r in records[1:]]
    return float(np.mean(rates)), spec


def bare_fit_images_per_second(spec, steps):
    from tao_qat.common.tensorflow_setup import keras, tf
    from tao_qat.modeling.detectnet import build_model

    pre = spec.augmentation_config.preprocessing
    shape = (pre.output_image_height, pre.output_image_width, pre.output_image_channel)
    batch = spec.training_config.batch_size_per_gpu
    model = build_model(spec.model_config, 1, shape, spec.training_config.regularizer)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
    rng = np.random.default_rng(0)
    images = rng.random((batch * 8, *shape), dtype=np.float32)
    targets = [np.zeros((batch * 8, *out.shape[1:]), np.float32) for out in model.outputs]
    data = tf.data.Dataset.from_tensor_slices((images, tuple(targets))).batch(batch).repeat()
    model.fit(data, steps_per_epoch=8, epochs=1, verbose=0)  # warm-up (tracing)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--layers", type=int, default=18)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        qat_rate, spec = qat_train_images_per_second(workdir, args.epochs, args.layers)
        bare_rate = bare_fit_images_per_second(spec, args.steps)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"ResNet-{args.layers} DetectNet_v2 384x384, batch 4")
    print(f"qat train:      {qat_rate:.2f} images/s (epochs 2..{args.epochs}, tree tiles)")
    print(f"bare Keras fit: {bare_rate:.2f} images/s ({args.steps} steps, in-memory tensors)")
    print(f"ratio:          {qat_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()

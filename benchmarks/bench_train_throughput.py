"""Training throughput of ``qat train`` vs a bare Keras ``fit`` of the same model (issue: >= 0.9).

The machine may be shared, so the two alternate in rounds (A B A B ...) in this one process and
the median of the per-round ratios is reported, with every round and the load average:
  A. ``qat train`` (library call) on the vendored tree tiles with the example ResNet-18 spec for
     ``--epochs`` epochs into a fresh results folder: full augmentation, the rasterizer in the
     input pipeline, every callback (progress, divergence guard, status, checkpoints, one
     validation after the last epoch). Rate: status.json ``images_per_second`` of epochs 2..E
     (epoch 1 traces the step and fills the decode cache).
  B. A bare ``keras.Model.fit`` of the same DetectNet_v2 (input size, batch size, L1 regularizer,
     Adam) on in-memory random tensors with a plain MSE loss on both heads, ``--epochs - 1``
     epochs of the same number of steps (the model is built and traced once, before round 1).
Both rates are measured by the same code, ``training.progress.ProgressCallback``: images of an
epoch / seconds from its ``on_epoch_begin`` to its ``on_epoch_end``, so every step counts
(including the first step of each epoch, the wait for input and the per-step callbacks); the
epoch-end work after it (validation, status.json / TensorBoard writes, checkpoints) does not.

Usage: python benchmarks/bench_train_throughput.py [--epochs 3] [--rounds 2] [--layers 18]
"""

import argparse
import contextlib
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from google.protobuf import text_format

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "trees"


def prepare(workdir, epochs, layers):
    """Convert the tree tiles once; write the train spec; return its path and the Experiment."""
    from tao_qat.data.convert import run_dataset_convert
    from tao_qat.spec.loader import load_dataset_export_spec, load_experiment_spec

    for split in ("train", "val"):
        spec = load_dataset_export_spec(EXAMPLE / "specs" / f"trees_tfrecords_{split}.txt")
        spec.kitti_config.root_directory_path = str(EXAMPLE / "data" / split)
        spec.image_directory_path = str(EXAMPLE / "data" / split)
        path = workdir / f"convert_{split}.txt"
        path.write_text(text_format.MessageToString(spec))
        run_dataset_convert(path, workdir / "tfrecords" / split / f"trees_{split}")
    spec = load_experiment_spec(EXAMPLE / "specs" / "trees_train_resnet18.txt")
    for source, split in (
        (spec.dataset_config.data_sources[0], "train"),
        (spec.dataset_config.validation_data_source, "val"),
    ):
        source.tfrecords_path = str(workdir / "tfrecords" / split / f"trees_{split}*")
        source.image_directory_path = str(EXAMPLE / "data" / split)
    spec.model_config.num_layers = layers
    spec.training_config.num_epochs = epochs
    spec.evaluation_config.first_validation_epoch = epochs
    spec.evaluation_config.validation_period_during_training = epochs
    spec_path = workdir / "train.txt"
    spec_path.write_text(text_format.MessageToString(spec))
    return spec_path, spec


def qat_train_rates(spec_path, results_dir):
    """images/s of epochs 2..E of one ``qat train`` run (status.json)."""
    from tao_qat.training.status import read_status
    from tao_qat.training.trainer import TrainOptions, run_train

    options = TrainOptions(spec_path=str(spec_path), results_dir=str(results_dir), echo=print)
    with contextlib.redirect_stdout(io.StringIO()):  # progress lines: shown, but not here
        run_train(options)
    records = [r for r in read_status(results_dir / "status.json") if r.get("epoch")]
    return [r["images_per_second"] for r in records[1:]]


class BareFit:
    """The same DetectNet_v2 under a plain ``fit`` on in-memory tensors (MSE on both heads)."""

    def __init__(self, spec, steps):
        from tao_qat.common.tensorflow_setup import keras, tf
        from tao_qat.modeling.detectnet import build_model

        pre = spec.augmentation_config.preprocessing
        shape = (pre.output_image_height, pre.output_image_width, pre.output_image_channel)
        self.batch = spec.training_config.batch_size_per_gpu
        self.steps = steps
        self.model = build_model(spec.model_config, 1, shape, spec.training_config.regularizer)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        rng = np.random.default_rng(0)
        images = rng.random((self.batch * 8, *shape), dtype=np.float32)
        targets = [
            np.zeros((self.batch * 8, *out.shape[1:]), np.float32) for out in self.model.outputs
        ]
        self.data = tf.data.Dataset.from_tensor_slices((images, tuple(targets)))
        self.data = self.data.batch(self.batch).repeat()
        self.model.fit(self.data, steps_per_epoch=4, epochs=1, verbose=0)  # trace

    def rates(self, epochs):
        """images/s of each of ``epochs`` epochs, timed as qat train times its epochs."""
        from tao_qat.common.tensorflow_setup import keras
        from tao_qat.training.progress import ProgressCallback

        progress = ProgressCallback(self.steps, epochs, self.batch, stream=io.StringIO(), tty=False)
        rates = []
        collect = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda *_: rates.append(progress.last_epoch_images_per_second)
        )
        self.model.fit(
            self.data,
            steps_per_epoch=self.steps,
            epochs=epochs,
            verbose=0,
            callbacks=[progress, collect],
        )
        return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="qat train epochs per round (>= 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layers", type=int, default=18)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the first epoch is warm-up)")
    from tao_qat.data.records import load_split
    from tao_qat.training.distribution import steps_per_epoch

    workdir = Path(tempfile.mkdtemp(prefix="bench_train_"))
    loads = [os.getloadavg()[0]]
    rounds = []
    try:
        spec_path, spec = prepare(workdir, args.epochs, args.layers)
        images = len(load_split(spec, "train", workdir))
        steps = steps_per_epoch(images, spec.training_config.batch_size_per_gpu, 1)
        bare = BareFit(spec, steps)
        print(
            f"ResNet-{args.layers} DetectNet_v2 384x384, batch "
            f"{spec.training_config.batch_size_per_gpu}, {images} tiles = {steps} steps/epoch"
        )
        for index in range(args.rounds):
            qat = qat_train_rates(spec_path, workdir / f"results_{index}")
            plain = bare.rates(args.epochs - 1)
            loads.append(os.getloadavg()[0])
            ratio = float(np.mean(qat)) / float(np.mean(plain))
            rounds.append(ratio)
            print(
                f"round {index + 1}: qat train {np.mean(qat):.2f} images/s (epochs "
                f"2..{args.epochs}: {', '.join(f'{r:.2f}' for r in qat)}), bare fit "
                f"{np.mean(plain):.2f} ({', '.join(f'{r:.2f}' for r in plain)}), ratio "
                f"{ratio:.3f}, load average {loads[-1]:.1f}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"command: python benchmarks/bench_train_throughput.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {min(loads):.1f}-{max(loads):.1f}"
    )
    print(
        f"median ratio qat train / bare fit: {statistics.median(rounds):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in rounds)})"
    )


if __name__ == "__main__":
    main()

"""Subprocess of test_checkpoints: train the tiny model and checkpoint after every step, forever.

Usage: python ckpt_writer.py RESULTS_DIR. Resumes from the newest complete checkpoint, then
loops: one training step, ``save_checkpoint(epoch)``, print ``saved <epoch>``. The test kills it
with SIGKILL at arbitrary moments.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_keras import tiny_data, tiny_model  # noqa: E402

from tao_qat.common.tensorflow_setup import keras  # noqa: E402
from tao_qat.training.checkpoints import (  # noqa: E402
    find_latest_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)


def main(results_dir):
    model = tiny_model()
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")
    objects = {"model": model, "optimizer": model.optimizer}
    latest = find_latest_checkpoint(results_dir)
    epoch = restore_checkpoint(latest, objects) if latest else 0
    x, y = tiny_data(4)
    while True:
        model.train_on_batch(x, y)
        epoch += 1
        save_checkpoint(results_dir, epoch, objects, model=model, keep=3)
        print(f"saved {epoch}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

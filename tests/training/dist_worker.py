"""Subprocess of test_distribution: train the tiny model 3 steps under a distribution strategy.

Usage:
    python dist_worker.py mirrored N OUT.npz [RESULTS_DIR]
                                                 MirroredStrategy over N logical CPUs (and
                                                 save_checkpoint(epoch 1) into RESULTS_DIR)
    python dist_worker.py multiworker OUT.npz    MultiWorkerMirroredStrategy from TF_CONFIG
Both train on the fixed tiny data with a global batch of 8 (24 samples -> 3 steps), Adam 1e-2,
and write the final weights (chief only for multi-worker) plus replica / chief facts to OUT.npz.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from tiny_keras import tiny_dataset, tiny_model  # noqa: E402

from tao_qat.common.tensorflow_setup import tf  # noqa: E402
from tao_qat.training.checkpoints import save_checkpoint  # noqa: E402
from tao_qat.training.distribution import (  # noqa: E402
    build_strategy,
    configure_logical_cpus,
    global_batch_size,
    is_chief,
)
from tao_qat.training.optimizer import AdamSettings  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


def train(strategy):
    """Fit the tiny model for STEPS global batches under ``strategy``; return it."""
    dataset = tiny_dataset(GLOBAL_BATCH, n=GLOBAL_BATCH * STEPS)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    with strategy.scope():
        model = tiny_model()
        model.compile(AdamSettings().build(1e-2), loss="mse")
    model.fit(dataset, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == STEPS
    return model


def main(argv):
    mode = argv[0]
    if mode == "mirrored":
        replicas, out = int(argv[1]), argv[2]
        configure_logical_cpus(replicas)  # before TensorFlow initialises its devices
        strategy = build_strategy(replicas, allow_cpu=True)
    else:
        out = argv[1]
        strategy = build_strategy(1)  # TF_CONFIG is set: multi-worker
    model = train(strategy)
    if mode == "mirrored" and len(argv) > 3:
        save_checkpoint(argv[3], 1, {"model": model, "optimizer": model.optimizer}, model=model)
    chief = is_chief(strategy)
    if chief:
        np.savez(
            out,
            *model.get_weights(),
            replicas=strategy.num_replicas_in_sync,
            global_batch=global_batch_size(GLOBAL_BATCH // strategy.num_replicas_in_sync, strategy),
            strategy=_kind(strategy),
        )


def _kind(strategy):
    """Public name of the strategy (MWMS's class is called CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return type(strategy).__name__


if __name__ == "__main__":
    main(sys.argv[1:])

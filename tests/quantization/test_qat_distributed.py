"""QAT under MirroredStrategy (2 logical CPUs, in a subprocess): ranges average over replicas."""

import subprocess
import sys

import pytest

SCRIPT = """
from tao_qat.training.distribution import build_strategy, configure_logical_cpus
configure_logical_cpus(2)
import numpy as np
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.modeling.detectnet import build_detectnet_v2
from tao_qat.quantization import create_qat_model, extract_quantization
strategy = build_strategy(2, allow_cpu=True)
with strategy.scope():
    qat = create_qat_model(build_detectnet_v2(10, 1, (32, 32, 3)))
    optimizer = keras.optimizers.SGD(0.01)
images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
images[2:] *= 0.5
data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(images).batch(4))

@tf.function
def step(batch):
    def replica_step(x):
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_mean(tf.square(out)) for out in qat(x, training=True)])
        grads = tape.gradient(loss, qat.trainable_variables)
        optimizer.apply_gradients(zip(grads, qat.trainable_variables))
    strategy.run(replica_step, args=(batch,))

for batch in data:
    step(batch)
_, activation_amax, _ = extract_quantization(qat)
print(activation_amax["input_1"], images[:2].max(), images[2:].max())
"""


def test_mirrored_strategy_averages_the_replica_ranges():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    amax, first, second = map(float, result.stdout.split())
    # Each replica sees 2 images; its first-step amax is its own max |x| (zero-debiased EMA);
    # like BN moving statistics, the synchronised value is the mean over replicas.
    assert amax == pytest.approx((first + second) / 2, rel=1e-5)

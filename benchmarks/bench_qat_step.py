"""Time one training step of the QAT model against the float model (same run, same data).

Usage: python benchmarks/bench_qat_step.py [--layers 18] [--size 384] [--batch 4] [--steps 4]
       [--warmup 2] [--rounds 2] [--per-tensor]

ResNet DetectNet_v2 with one class, random images in [0, 1] and random targets, a compiled
``tf.function`` step (forward in training mode, squared-error loss on both heads, Adam). Each
round times ``--steps`` steps of the float model then of the QAT model (after ``--warmup``
untimed steps, tracing included in the warm-up), so load changes on a shared machine hit both.
Prints the median and minimum step time of each and the ratio QAT / FP32 of the medians.
"""

import argparse
import statistics
import time

import numpy as np

from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.modeling.detectnet import build_detectnet_v2
from tao_qat.quantization import QuantizationPolicy, create_qat_model


def make_step(model):
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def step(images, cov, bbox):
        with tf.GradientTape() as tape:
            out_cov, out_bbox = model(images, training=True)
            loss = tf.reduce_mean(tf.square(out_cov - cov)) + tf.reduce_mean(
                tf.square(out_bbox - bbox)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def time_steps(step, data, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step(*data).numpy()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--per-tensor", action="store_true", help="per-tensor weight ranges")
    args = parser.parse_args()

    shape = (args.size, args.size, 3)
    float_model = build_detectnet_v2(args.layers, 1, shape)
    policy = QuantizationPolicy(per_channel_weights=not args.per_tensor)
    qat_model = create_qat_model(float_model, policy)
    rng = np.random.default_rng(0)
    grid = args.size // 16
    data = (
        tf.constant(rng.random((args.batch, *shape), dtype=np.float32)),
        tf.constant(rng.random((args.batch, grid, grid, 1), dtype=np.float32)),
        tf.constant(rng.normal(size=(args.batch, grid, grid, 4)).astype(np.float32)),
    )
    steps = {"fp32": make_step(float_model), "qat": make_step(qat_model)}
    for step in steps.values():
        time_steps(step, data, args.warmup)
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name] += time_steps(step, data, args.steps)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"ResNet-{args.layers} {args.size}x{args.size} batch {args.batch}, per-"
        f"{'tensor' if args.per_tensor else 'channel'} weights, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    for name, values in times.items():
        print(f"{name:5s} step median {medians[name]:.3f} s  min {min(values):.3f} s")
    print(f"QAT / FP32 step time (medians): {medians['qat'] / medians['fp32']:.3f}")


if __name__ == "__main__":
    main()

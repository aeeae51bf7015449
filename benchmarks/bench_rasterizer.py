"""Throughput of the TF rasterizer inside tf.data (not a test; run it by hand).

    /work/venv/bin/python tests/objectives/benchmark_rasterizer.py

Prints images/s for per-image and per-batch mapping with 2 parallel calls, at 384x384 with
20 boxes / image (the tree-tile setting) and at 1248x384 with 50 boxes and 3 classes (KITTI).
"""

import time

import numpy as np

from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.params import ClassRasterParams, RasterizerParams
from tao_qat.objectives.rasterizer import BboxRasterizer


def images_per_second(dataset, images_per_element):
    iterator = iter(dataset)
    next(iterator)  # exclude tracing
    start, count = time.perf_counter(), 0
    for _ in iterator:
        count += images_per_element
    return count / (time.perf_counter() - start)


def bench(height, width, max_boxes, num_classes, num_images=400, batch_size=4):
    rng = np.random.default_rng(0)
    params = RasterizerParams((ClassRasterParams(),) * num_classes, deadzone_radius=0.67)
    xy = rng.uniform(0, [width - 40, height - 40], size=(num_images, max_boxes, 2))
    wh = rng.uniform(8, 100, size=(num_images, max_boxes, 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    classes = rng.integers(0, num_classes, size=(num_images, max_boxes)).astype(np.int32)
    rasterizer = BboxRasterizer(params, (height, width))
    data = tf.data.Dataset.from_tensor_slices((boxes, classes)).cache().repeat(2)
    per_image = data.map(rasterizer.rasterize_image, num_parallel_calls=2)
    per_batch = data.batch(batch_size).map(lambda b, c: rasterizer(b, c), num_parallel_calls=2)
    print(
        f"{width}x{height}, {max_boxes} boxes, {num_classes} classes: "
        f"per image {images_per_second(per_image, 1):.0f} img/s, "
        f"per batch of {batch_size} {images_per_second(per_batch, batch_size):.0f} img/s"
    )


if __name__ == "__main__":
    bench(384, 384, 20, 1)
    bench(384, 1248, 50, 3)

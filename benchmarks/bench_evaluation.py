"""Time evaluation (5,000 images x 50 detections) and postprocessing (24x24 grids) on this machine.

Usage: python benchmarks/bench_evaluation.py [--images 5000] [--detections 50] [--repeat 3]

Synthetic but realistic shapes: 3 classes, 10 ground-truth boxes per image, detections
jittered around ground truth (some in the wrong place), random confidences. Prints the best
of ``--repeat`` wall-clock times for each AP mode, then postprocessing time per image for a
384x384 input (24x24 grid) with DBSCAN, NMS and HYBRID.
"""

import argparse
import time

import numpy as np

from tao_qat.common.detections import Detections, GroundTruth
from tao_qat.evaluation import evaluate_detections
from tao_qat.postprocessing import ClusteringSettings, postprocess_batch
from tao_qat.postprocessing.decode import grid_centers

CLASSES = ["car", "pedestrian", "cyclist"]


def synthetic_dataset(num_images, num_detections, num_gt=10, seed=0):
    rng = np.random.default_rng(seed)
    detections, ground_truth = [], []
    for _ in range(num_images):
        xy = rng.uniform(0, 300, (num_gt, 2))
        gt_boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (num_gt, 2))], axis=1)
        gt_classes = rng.integers(0, len(CLASSES), num_gt)
        ground_truth.append(GroundTruth(gt_boxes, gt_classes))
        source = rng.integers(0, num_gt, num_detections)
        boxes = gt_boxes[source] + rng.normal(0, 6, (num_detections, 4))
        detections.append(Detections(boxes, rng.random(num_detections), gt_classes[source]))
    return detections, ground_truth


def best_time(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_outputs(batch, grid=24, stride=16, seed=0):
    """cov [B, 24, 24, 3] with a few 3x3 blobs per class and bbox encoding their boxes."""
    rng = np.random.default_rng(seed)
    cov = rng.uniform(0, 0.01, (batch, grid, grid, len(CLASSES))).astype(np.float32)
    bbox = np.zeros((batch, grid, grid, 4 * len(CLASSES)), np.float32)
    gx, gy = grid_centers((grid, grid), stride)
    for b in range(batch):
        for c in range(len(CLASSES)):
            for _ in range(5):
                i, j = rng.integers(1, grid - 1, 2)
                box = np.array([gx[i] - 20, gy[j] - 25, gx[i] + 20, gy[j] + 25])
                for jj in range(j - 1, j + 2):
                    for ii in range(i - 1, i + 2):
                        cov[b, jj, ii, c] = rng.uniform(0.1, 0.6)
                        enc = [gx[ii] - box[0], gy[jj] - box[1], box[2] - gx[ii], box[3] - gy[jj]]
                        bbox[b, jj, ii, 4 * c : 4 * c + 4] = np.array(enc) / 35 + rng.normal(
                            0, 0.02, 4
                        )
    return cov, bbox


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    detections, ground_truth = synthetic_dataset(args.images, args.detections)
    total = args.images * args.detections
    print(f"evaluation: {args.images} images x {args.detections} detections = {total} detections")
    for mode in ("integrate", "sample"):
        seconds = best_time(
            lambda mode=mode: evaluate_detections(
                detections, ground_truth, CLASSES, 0.5, ap_mode=mode
            ),
            args.repeat,
        )
        print(f"  evaluate_detections(ap_mode={mode!r}): {seconds:.3f} s")

    batch = 32
    cov, bbox = synthetic_outputs(batch)
    print(f"postprocessing: batch {batch}, 384x384 input (24x24 grid), {len(CLASSES)} classes")
    for algorithm in ("dbscan", "nms", "hybrid"):
        settings = ClusteringSettings(algorithm=algorithm, coverage_threshold=0.005, dbscan_eps=0.3)
        postprocess_batch(cov[:1], bbox[:1], settings, stride=16)  # warm-up (lazy imports)
        seconds = best_time(lambda s=settings: postprocess_batch(cov, bbox, s, stride=16), 3)
        found = sum(len(d) for d in postprocess_batch(cov, bbox, settings, stride=16)) / batch
        print(
            f"  {algorithm:6s}: {1000 * seconds / batch:.1f} ms per image "
            f"({found:.1f} detections per image)"
        )


if __name__ == "__main__":
    main()

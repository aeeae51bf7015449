"""Fixtures for the objectives tests: rasterizer parameters and a graph-mode rasterizer runner."""

import numpy as np
import pytest

from tao_qat.objectives.params import ClassRasterParams, RasterizerParams

# NVIDIA's shipped class settings: centred ellipse, 0.4 of the half-extent, >= 1 cell radius.
NVIDIA_CLASS = ClassRasterParams(0.5, 0.5, 0.4, 0.4, 1.0)

# One box 32x32 px at (8, 8)-(40, 40) on a 64x64 input (grid 4x4, stride 16) is, in grid
# cells, (0.5, 0.5)-(2.5, 2.5): centre (1.5, 1.5) = centre of cell (1, 1), half-extent 1.
# Coverage radius 0.4 * 1 = 0.4 is raised to bbox_min_radius 1 (aspect kept: 1 x 1); the
# deadzone 0.33 * 1 + 0.67 * 1 = 1 equals it. inv_bbox_area = 1 / max(4 * 1 * 1, 1) = 0.25.
# Samples sit at offsets +-0.125, +-0.375 from a cell centre:
# - cell (1, 1): farthest sample at 0.53 < 1 -> 16/16 = 1;
# - edge neighbours, e.g. (2, 1): dx in {0.625, 0.875, 1.125, 1.375}, |dy| <= 0.375; only
#   dx 0.625 and 0.875 are inside for all 4 dy (0.875^2 + 0.375^2 = 0.906 < 1) -> 8/16 = 0.5;
# - corners, e.g. (2, 2): only (0.625, 0.625) (0.78 < 1); (0.625, 0.875) is 1.16 -> 1/16.
CENTRED_BOX = [8.0, 8.0, 40.0, 40.0]
CENTRED_COV = np.array(
    [
        [0.0625, 0.5, 0.0625, 0.0],
        [0.5, 1.0, 0.5, 0.0],
        [0.0625, 0.5, 0.0625, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ],
    np.float32,
)


@pytest.fixture
def nvidia_params():
    """One class, NVIDIA's spec values (deadzone 0.67, scale 35, offset 0.5)."""
    return RasterizerParams(classes=(NVIDIA_CLASS,), deadzone_radius=0.67)


def run_graph(rasterizer, boxes, classes, num_boxes=None):
    """Run a ``BboxRasterizer`` as a tf.function on a padded batch; returns numpy arrays."""
    from tao_qat.common.tensorflow_setup import tf

    boxes = np.asarray(boxes, np.float32)
    classes = np.asarray(classes, np.int32)
    if num_boxes is None:
        fn = tf.function(lambda b, c: rasterizer(b, c))
        out = fn(boxes, classes)
    else:
        fn = tf.function(lambda b, c, n: rasterizer(b, c, n))
        out = fn(boxes, classes, np.asarray(num_boxes, np.int32))
    return {k: v.numpy() for k, v in out.items()}

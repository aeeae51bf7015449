"""Bbox encoding: encode/decode inverse, and ground truth -> targets -> decoded boxes."""

import numpy as np
from conftest import NVIDIA_CLASS, run_graph

from tao_qat.objectives.encoding import (
    cell_anchors,
    decode_boxes,
    decode_grid,
    encode_boxes,
    encode_grid,
)
from tao_qat.objectives.params import RasterizerParams
from tao_qat.objectives.rasterizer import BboxRasterizer
from tao_qat.objectives.rasterizer_numpy import rasterize_numpy


def test_anchor_is_i_times_stride_plus_offset():
    # QUIRK: the anchor of cell 2 is 2 * 16 + 0.5 = 32.5, not the cell centre 40.
    gx, gy = cell_anchors((2, 3), (16.0, 16.0))
    np.testing.assert_array_equal(gx, [0.5, 16.5, 32.5])
    np.testing.assert_array_equal(gy, [0.5, 16.5])


def test_encode_known_box_and_decode_back():
    # Box (10, 20)-(80, 55) seen from anchor (32.5, 16.5):
    # L = 22.5/35 = 0.642857, T = -3.5/35 = -0.1, R = 47.5/35 = 1.357143, B = 38.5/35 = 1.1.
    ltrb = encode_boxes([10.0, 20.0, 80.0, 55.0], 32.5, 16.5)
    np.testing.assert_allclose(ltrb, [22.5 / 35, -0.1, 47.5 / 35, 1.1], rtol=1e-6)
    np.testing.assert_allclose(decode_boxes(ltrb, 32.5, 16.5), [10.0, 20.0, 80.0, 55.0], atol=1e-5)


def test_encode_grid_then_decode_grid_round_trips():
    boxes = np.array([[3.0, 5.0, 60.0, 41.0], [-10.0, 30.0, 20.0, 90.0]], np.float32)
    encoded = encode_grid(boxes, (4, 5), (16.0, 16.0))  # [2, 4, 5, 4]
    as_targets = np.concatenate([encoded[0], encoded[1]], axis=-1)  # [4, 5, 8]: 2 classes
    decoded = decode_grid(as_targets, (16.0, 16.0))  # [4, 5, 2, 4]
    np.testing.assert_allclose(decoded[:, :, 0], np.broadcast_to(boxes[0], (4, 5, 4)), atol=1e-4)
    np.testing.assert_allclose(decoded[:, :, 1], np.broadcast_to(boxes[1], (4, 5, 4)), atol=1e-4)


def test_ground_truth_to_targets_to_boxes_is_exact():
    # Non-overlapping boxes of two classes on a 192x128 input: every cell with cov > 0 must
    # decode (x1 = gx - 35 L, ...) to exactly the box that owns it, and every box must own
    # at least one cell.
    params = RasterizerParams(classes=(NVIDIA_CLASS, NVIDIA_CLASS), deadzone_radius=0.67)
    boxes = np.array(
        [[4, 6, 60, 50], [70, 3, 100, 120], [110, 10, 190, 40], [120, 60, 170, 125]], np.float32
    )
    classes = np.array([0, 1, 0, 1], np.int32)
    targets = run_graph(BboxRasterizer(params, (128, 192)), boxes[None], classes[None])
    targets = {k: v[0] for k, v in targets.items()}
    ref = rasterize_numpy(boxes, classes, params, (128, 192))
    decoded = decode_grid(targets["bbox"], (16.0, 16.0))  # [8, 12, 2, 4]
    for c in range(2):
        owned = targets["cov"][:, :, c] > 0
        assert owned.any() and np.array_equal(owned, ref["cov"][:, :, c] > 0)
        cell_boxes = decoded[:, :, c][owned]  # [K, 4]
        gt = boxes[classes == c]
        errors = np.abs(cell_boxes[:, None, :] - gt[None]).max(axis=-1)  # [K, num_gt]
        assert errors.min(axis=1).max() < 1e-4  # every cell decodes to one GT box
        assert (errors < 1e-4).any(axis=0).all()  # every GT box is recovered

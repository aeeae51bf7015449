"""Rasterizer: hand-worked TAO cases, numpy reference vs TensorFlow, tf.data graph mode."""

import numpy as np
import pytest
from conftest import CENTRED_BOX, CENTRED_COV, NVIDIA_CLASS, run_graph

from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.params import ClassRasterParams, RasterizerParams
from tao_qat.objectives.rasterizer import BboxRasterizer
from tao_qat.objectives.rasterizer_numpy import box_ellipse, rasterize_numpy


def _both(params, input_shape, boxes, classes):
    """(numpy reference, TF graph) targets of one image."""
    ref = rasterize_numpy(boxes, classes, params, input_shape)
    out = run_graph(BboxRasterizer(params, input_shape), [boxes], [classes])
    return ref, {k: v[0] for k, v in out.items()}


def test_single_box_centred_on_a_cell(nvidia_params):
    for targets in _both(nvidia_params, (64, 64), [CENTRED_BOX], [0]):
        np.testing.assert_array_equal(targets["cov"][:, :, 0], CENTRED_COV)
        np.testing.assert_allclose(targets["cov_norm"][:, :, 0], 0.25 * CENTRED_COV, atol=1e-7)


def test_bbox_targets_of_a_known_box(nvidia_params):
    # At cell (i, j): L = (16i + 0.5 - 8) / 35, T = (16j + 0.5 - 8) / 35,
    # R = (40 - 16i - 0.5) / 35, B = (40 - 16j - 0.5) / 35; e.g. at (1, 1):
    # L = T = 8.5 / 35 = 0.242857, R = B = 23.5 / 35 = 0.671429. Zero where cov = 0.
    i = np.arange(4, dtype=np.float64)[None, :]
    j = np.arange(4, dtype=np.float64)[:, None]
    expected = np.stack(
        np.broadcast_arrays(
            (16 * i + 0.5 - 8) / 35,
            (16 * j + 0.5 - 8) / 35,
            (40 - 16 * i - 0.5) / 35,
            (40 - 16 * j - 0.5) / 35,
        ),
        axis=-1,
    ) * (CENTRED_COV[..., None] > 0)
    for targets in _both(nvidia_params, (64, 64), [CENTRED_BOX], [0]):
        np.testing.assert_allclose(targets["bbox"], expected, atol=1e-6)
        np.testing.assert_allclose(
            targets["bbox"][1, 1], [8.5 / 35, 8.5 / 35, 23.5 / 35, 23.5 / 35], atol=1e-6
        )


def test_overlap_bottom_most_box_wins_ties_regardless_of_input_order(nvidia_params):
    # Box A = the centred box (ellipse centre row 1.5), box B the same shifted 32 px down
    # (centre row 3.5, ymax 72 > 40: drawn last). Cell (1, 2) is equidistant: both give
    # a = c = 0.5. Drawing B last, a_B = 0.5 >= 0.5 clears and c_B = 0.5 >= 0 takes the cell,
    # so its T target is B's: (16*2 + 0.5 - 40) / 35 = -0.2143 (A's would be 24.5/35 = 0.7).
    box_a, box_b = CENTRED_BOX, [8.0, 40.0, 40.0, 72.0]
    for order in ([box_a, box_b], [box_b, box_a]):
        for targets in _both(nvidia_params, (80, 64), order, [0, 0]):
            assert targets["cov"][2, 1, 0] == 0.5
            np.testing.assert_allclose(targets["bbox"][2, 1, 1], (32.5 - 40) / 35, atol=1e-6)
            # Cells nearer to A keep A: cell (1, 1) has c_A = 1 > a_B = 1/16.
            np.testing.assert_allclose(targets["bbox"][1, 1, 1], 8.5 / 35, atol=1e-6)


def test_deadzone_of_a_later_box_clears_an_earlier_one():
    # Input 160x160 (grid 10x10), deadzone_radius 1 (deadzone = whole box half-extent).
    # Box A (8, 72)-(40, 104) = cells (0.5, 4.5)-(2.5, 6.5): circle radius 1 at (1.5, 5.5),
    # so alone it gives cov 1 at cell (1, 5). Box B (0, 0)-(160, 160) = cells (0, 0)-(10, 10),
    # ymax 10 > 6.5 so drawn after A: coverage radius 0.4 * 5 = 2, deadzone radius 5 at (5, 5).
    # Cell (1, 5)'s samples are 3.13..3.97 cells from B's centre: all inside the deadzone
    # (a = 1 >= 1 clears A) and none inside B's coverage (c = 0): the cell ends empty.
    box_a, box_b = [8.0, 72.0, 40.0, 104.0], [0.0, 0.0, 160.0, 160.0]
    wide = RasterizerParams(classes=(NVIDIA_CLASS,), deadzone_radius=1.0)
    for targets in _both(wide, (160, 160), [box_a, box_b], [0, 0]):
        assert targets["cov"][5, 1, 0] == 0.0
        assert targets["cov_norm"][5, 1, 0] == 0.0
        np.testing.assert_array_equal(targets["bbox"][5, 1], 0.0)
    # With deadzone_radius 0, B's deadzone is its coverage circle (radius 2): A survives.
    narrow = RasterizerParams(classes=(NVIDIA_CLASS,), deadzone_radius=0.0)
    for targets in _both(narrow, (160, 160), [box_a, box_b], [0, 0]):
        assert targets["cov"][5, 1, 0] == 1.0
    # And A alone:
    alone = rasterize_numpy([box_a], [0], wide, (160, 160))
    assert alone["cov"][5, 1, 0] == 1.0


def test_classes_go_to_their_own_channels():
    params = RasterizerParams(classes=(NVIDIA_CLASS, NVIDIA_CLASS), deadzone_radius=0.67)
    for targets in _both(params, (64, 64), [CENTRED_BOX, CENTRED_BOX], [1, -1]):
        np.testing.assert_array_equal(targets["cov"][:, :, 0], 0.0)
        np.testing.assert_array_equal(targets["cov"][:, :, 1], CENTRED_COV)
        np.testing.assert_array_equal(targets["bbox"][:, :, 0:4], 0.0)
        np.testing.assert_allclose(
            targets["bbox"][1, 1, 4:8], [8.5 / 35, 8.5 / 35, 23.5 / 35, 23.5 / 35], atol=1e-6
        )


def test_min_radius_keeps_aspect_ratio():
    # A 32x8 px box = 2 x 0.5 cells: half-extents 1 x 0.25, coverage 0.4 x 0.1. csx < 1 ->
    # (1, 1 * 0.1 / 0.4 = 0.25); then csy 0.25 < 1 -> (1 * 1 / 0.25 = 4, 1).
    # inv_bbox_area = 1 / (4 * 4 * 1) = 1/16.
    ellipse = box_ellipse(np.float32([0.5, 0.5, 2.5, 1.0]), NVIDIA_CLASS, 0.0)
    np.testing.assert_allclose(1 / ellipse["oodsx"], 4.0, rtol=1e-6)
    np.testing.assert_allclose(1 / ellipse["oodsy"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(ellipse["inv_bbox_area"], 1 / 16, rtol=1e-6)


def test_thin_box_bbox_slope_is_damped_like_tao():
    # QUIRK: a 1-px wide box is 1/16 cell wide; TAO clamps the squared edge length to 0.01,
    # so the L ramp slope is (1/35) * (1/16) / 0.01 = 0.17857 per cell instead of 16/35:
    # L(i) = 0.5/35 + 0.17857 * (i - xmin). Box x 40..41 px -> xmin 2.5 cells; at i = 2:
    # L = 0.0142857 - 0.0892857 = -0.075 (the exact distance would be (32.5 - 40)/35 = -0.2143).
    params = RasterizerParams(classes=(NVIDIA_CLASS,), deadzone_radius=0.67)
    ref = rasterize_numpy([[40.0, 8.0, 41.0, 40.0]], [0], params, (64, 64))
    assert ref["cov"][1, 2, 0] > 0
    np.testing.assert_allclose(
        ref["bbox"][1, 2, 0], 0.5 / 35 - (1 / 35) * (1 / 16) / 0.01 * 0.5, atol=1e-6
    )


def _random_boxes(rng, batch, max_boxes, input_shape, num_classes):
    height, width = input_shape
    xy = rng.uniform([-30, -30], [width + 10, height + 10], size=(batch, max_boxes, 2))
    wh = rng.uniform(0.5, 140, size=(batch, max_boxes, 2))
    wh[:, :3] = rng.uniform(0.2, 3, size=(batch, 3, 2))  # tiny boxes: clamps and min radius
    boxes = np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)
    classes = rng.integers(-1, num_classes, size=(batch, max_boxes)).astype(np.int32)
    return boxes, classes


def test_tf_matches_numpy_reference_on_random_boxes():
    rng = np.random.default_rng(7)
    params = RasterizerParams(
        classes=(
            ClassRasterParams(0.5, 0.5, 0.4, 0.4, 1.0),
            ClassRasterParams(0.3, 0.7, 0.9, 0.25, 0.5),
            ClassRasterParams(0.5, 0.5, 1.0, 1.0, 0.1),
        ),
        deadzone_radius=0.4,
    )
    input_shape = (96, 160)
    boxes, classes = _random_boxes(rng, 4, 25, input_shape, params.num_classes)
    num_boxes = np.array([25, 10, 0, 18], np.int32)
    out = run_graph(BboxRasterizer(params, input_shape), boxes, classes, num_boxes)
    assert out["cov"].shape == (4, 6, 10, 3) and out["bbox"].shape == (4, 6, 10, 12)
    for b in range(4):
        n = num_boxes[b]
        ref = rasterize_numpy(boxes[b, :n], classes[b, :n], params, input_shape)
        assert (ref["cov"] > 0).sum() > 0 or n == 0
        for name in ("cov", "cov_norm", "bbox"):
            np.testing.assert_allclose(out[name][b], ref[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_usable_in_tf_data_map_per_image_and_per_batch(nvidia_params):
    rasterizer = BboxRasterizer(nvidia_params, (64, 64))
    boxes = np.array([[CENTRED_BOX, [0, 0, 0, 0]], [CENTRED_BOX, CENTRED_BOX]], np.float32)
    classes = np.array([[0, -1], [-1, -1]], np.int32)
    data = tf.data.Dataset.from_tensor_slices((boxes, classes))
    per_image = list(data.map(rasterizer.rasterize_image))
    per_batch = list(data.batch(2).map(lambda b, c: rasterizer(b, c)))
    np.testing.assert_array_equal(per_image[0]["cov"][:, :, 0], CENTRED_COV)
    np.testing.assert_array_equal(per_image[1]["cov"], 0.0)  # only padding
    np.testing.assert_array_equal(per_batch[0]["cov"][0, :, :, 0], CENTRED_COV)
    np.testing.assert_array_equal(per_batch[0]["cov"][1], 0.0)


def test_images_without_boxes(nvidia_params):
    out = run_graph(BboxRasterizer(nvidia_params, (32, 48)), np.zeros((2, 0, 4)), np.zeros((2, 0)))
    assert out["cov"].shape == (2, 2, 3, 1) and out["bbox"].shape == (2, 2, 3, 4)
    assert not any(v.any() for v in out.values())


@pytest.mark.parametrize("grid_shape", [None, (4, 4)])
def test_grid_shape_defaults_to_stride_16(nvidia_params, grid_shape):
    assert BboxRasterizer(nvidia_params, (64, 64), grid_shape).grid_shape == (4, 4)

"""Spatial matrices, box transforms and image warps (tao_qat.data.augment), worked by hand."""

import math

import numpy as np
import pytest

from tao_qat.common.tensorflow_setup import tf
from tao_qat.data import augment
from tao_qat.data.augment import Preprocessing, SpatialAugmentation

W = H = 64
BOX = [5.0, 10.0, 25.0, 20.0]  # 20 x 10 box, x2/y2 exclusive pixel bounds


def boxes_through(matrix, boxes=(BOX,)):
    return augment.transform_boxes(tf.constant(boxes, tf.float32), matrix).numpy()


def filled_image(box, size=(W, H)):
    image = np.zeros((size[1], size[0], 3), np.float32)
    x1, y1, x2, y2 = (int(v) for v in box)
    image[y1:y2, x1:x2] = 1.0
    return image


def region_bounds(image, threshold=0.5):
    """(x1, y1, x2, y2) of the pixels brighter than threshold, in continuous coordinates."""
    ys, xs = np.nonzero(image[..., 0] > threshold)
    if xs.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_flip_matrix_mirrors_box():
    # x -> 64 - x: (5, 25) -> (39, 59); y unchanged.
    m = augment.flip_matrix(True, False, W, H)
    np.testing.assert_allclose(boxes_through(m), [[39, 10, 59, 20]], atol=1e-5)
    # y -> 64 - y: (10, 20) -> (44, 54).
    m = augment.flip_matrix(False, True, W, H)
    np.testing.assert_allclose(boxes_through(m), [[5, 44, 25, 54]], atol=1e-5)


def test_translation_matrix_shifts_box():
    # (+3, -2): (5, 10, 25, 20) -> (8, 8, 28, 18).
    m = augment.translation_matrix(3, -2)
    np.testing.assert_allclose(boxes_through(m), [[8, 8, 28, 18]], atol=1e-5)


def test_zoom_matrix_scales_then_offsets():
    # ratio 2 (zoom out), offset (10, 4): x / 2 + 10, y / 2 + 4 -> (12.5, 9, 22.5, 14).
    m = augment.zoom_matrix(2.0, 10.0, 4.0)
    np.testing.assert_allclose(boxes_through(m), [[12.5, 9, 22.5, 14]], atol=1e-5)


def test_rotation_by_90_degrees_about_centre():
    # Centre (32, 32), 90 degrees: (x, y) -> (64 - y, x). Corners x in {5, 25}, y in {10, 20}
    # -> x' in {54, 44}, y' in {5, 25} -> (44, 5, 54, 25).
    m = augment.rotation_matrix(math.pi / 2, W, H)
    np.testing.assert_allclose(boxes_through(m), [[44, 5, 54, 25]], atol=1e-4)


def test_rotation_by_45_degrees_bounds_rotated_corners():
    # A 20 x 20 square centred on the canvas centre, turned 45 degrees: its axis-aligned box has
    # half-size 10 * sqrt(2) = 14.142 -> (17.858, 17.858, 46.142, 46.142).
    m = augment.rotation_matrix(math.pi / 4, W, H)
    h = 10 * math.sqrt(2)
    expected = [[32 - h, 32 - h, 32 + h, 32 + h]]
    np.testing.assert_allclose(boxes_through(m, ([22, 22, 42, 42],)), expected, atol=1e-4)


def test_rotated_box_cut_by_the_border_is_intersected_not_clipped():
    # Square (0, 0, 20, 20) centred at the origin, turned 45 degrees, moved to centre (-4, 32):
    # a diamond with corners (-18.142, 32), (-4, 17.858), (10.142, 32), (-4, 46.142).
    # Its visible part (x >= 0) is cut where the edges cross x = 0, at y = 17.858 + 4 = 21.858
    # and 46.142 - 4 = 42.142 -> (0, 21.858, 10.142, 42.142); clipping the full box would
    # give the looser (0, 17.858, 10.142, 46.142).
    m = (
        augment.translation_matrix(-4, 32)
        @ augment.rotation_matrix(math.pi / 4, 0, 0)
        @ augment.translation_matrix(-10, -10)
    )
    box = ([0.0, 0.0, 20.0, 20.0],)
    h = 10 * math.sqrt(2)
    np.testing.assert_allclose(boxes_through(m, box), [[-4 - h, 32 - h, -4 + h, 32 + h]], atol=1e-4)
    got = augment.transform_boxes(tf.constant(box), m, W, H).numpy()
    np.testing.assert_allclose(got, [[0, 32 - h + 4, -4 + h, 32 + h - 4]], atol=1e-4)


def test_intersection_of_boxes_missing_or_covering_the_canvas():
    m = augment.rotation_matrix(0.3, W, H)
    boxes = tf.constant([[100.0, 100, 120, 120], [-10, -10, 80, 80]])
    got = augment.transform_boxes(boxes, m, W, H).numpy()
    np.testing.assert_allclose(got, [[0, 0, 0, 0], [0, 0, W, H]], atol=1e-4)


def test_preprocessing_matrix_crop_scale_and_auto_resize():
    box = [[6.0, 12.0, 30.0, 24.0]]
    # Default: identity (pad right/bottom then crop at the origin).
    m = augment.preprocessing_matrix(Preprocessing(32, 32), 64, 48)
    np.testing.assert_allclose(boxes_through(m, box), box, atol=1e-5)
    # Crop (16, 8, 48, 40): subtract (16, 8) -> (-10, 4, 14, 16).
    m = augment.preprocessing_matrix(Preprocessing(32, 32, crop=(16, 8, 48, 40)), 64, 48)
    np.testing.assert_allclose(boxes_through(m, box), [[-10, 4, 14, 16]], atol=1e-5)
    # Scale (0.5, 0.5) -> (3, 6, 15, 12).
    m = augment.preprocessing_matrix(Preprocessing(32, 32, scale=(0.5, 0.5)), 64, 48)
    np.testing.assert_allclose(boxes_through(m, box), [[3, 6, 15, 12]], atol=1e-5)
    # Auto-resize 64 x 48 -> 32 x 32: sx = 0.5, sy = 32 / 48 -> (3, 8, 15, 16).
    m = augment.preprocessing_matrix(Preprocessing(32, 32, auto_resize=True), 64, 48)
    np.testing.assert_allclose(boxes_through(m, box), [[3, 8, 15, 16]], atol=1e-5)


def test_clip_and_filter_boxes():
    boxes = tf.constant(
        [
            [-10, 4, 14, 16],  # partly outside -> clipped to (0, 4, 14, 16)
            [40, 40, 50, 50],  # fully outside a 32 x 32 canvas -> dropped
            [31.5, 2, 40, 9],  # 0.5 px wide once clipped -> dropped (< 1 px)
            [2, 2, 5, 3.5],  # 3 x 1.5 -> kept with min 1, dropped with min height 2
        ],
        tf.float32,
    )
    classes = tf.constant([0, 1, 2, 3], tf.int32)
    kept, ids = augment.clip_and_filter_boxes(boxes, classes, 32, 32)
    np.testing.assert_allclose(kept.numpy(), [[0, 4, 14, 16], [2, 2, 5, 3.5]])
    assert ids.numpy().tolist() == [0, 3]
    kept, ids = augment.clip_and_filter_boxes(boxes, classes, 32, 32, min_height=2.0)
    assert ids.numpy().tolist() == [0]


def test_warp_identity_and_integer_shift_copy_pixels_exactly():
    rng = np.random.default_rng(0)
    image = rng.random((H, W, 3), dtype=np.float32)
    out = augment.warp_image(tf.constant(image), tf.eye(3, dtype=tf.float64), H, W).numpy()
    np.testing.assert_array_equal(out, image)
    # Shift by (+3, +2) onto a 70 x 70 canvas: out[y + 2, x + 3] = in[y, x], zeros elsewhere.
    out = augment.warp_image(tf.constant(image), augment.translation_matrix(3, 2), 70, 70).numpy()
    np.testing.assert_array_equal(out[2 : 2 + H, 3 : 3 + W], image)
    assert out[:2].max() == 0 and out[:, :3].max() == 0 and out[2 + H :].max() == 0


def test_warp_flip_reverses_columns():
    image = np.arange(W, dtype=np.float32)[np.newaxis, :, np.newaxis].repeat(H, 0).repeat(3, 2)
    out = augment.warp_image(tf.constant(image), augment.flip_matrix(True, False, W, H), H, W)
    np.testing.assert_array_equal(out.numpy(), image[:, ::-1])


@pytest.mark.parametrize(
    "name",
    ["hflip", "vflip", "translate", "zoom_out", "zoom_in", "rotate_30", "rotate_m20"],
)
def test_boxes_follow_filled_region(name):
    """The transformed box bounds the transformed filled region within 1 px."""
    box = [12.0, 16.0, 40.0, 36.0]
    matrices = {
        "hflip": augment.flip_matrix(True, False, W, H),
        "vflip": augment.flip_matrix(False, True, W, H),
        "translate": augment.translation_matrix(-5, 7),
        "zoom_out": augment.zoom_matrix(1.6, 9.0, 3.0),
        "zoom_in": augment.zoom_matrix(0.7, -12.0, -5.0),
        "rotate_30": augment.rotation_matrix(math.radians(30), W, H),
        "rotate_m20": augment.rotation_matrix(math.radians(-20), W, H),
    }
    m = matrices[name]
    warped = augment.warp_image(tf.constant(filled_image(box)), m, H, W).numpy()
    expected = region_bounds(warped)
    got = augment.transform_boxes(tf.constant([box]), m, W, H)
    np.testing.assert_allclose(got.numpy()[0], expected, atol=1.0)


def test_random_spatial_matrices_move_boxes_with_pixels():
    """Strong random flip + translate + zoom + rotate: boxes stay on their pixels (1 px)."""
    spatial = SpatialAugmentation(
        hflip_probability=0.5,
        vflip_probability=0.5,
        translate_max_x=8,
        translate_max_y=8,
        zoom_min=0.6,
        zoom_max=1.5,
        rotate_rad_max=0.6,
    )
    box = [20.0, 18.0, 44.0, 40.0]
    image = tf.constant(filled_image(box))
    checked = 0
    for k in range(12):
        m = augment.sample_spatial_matrix(spatial, W, H, tf.constant([7, k], tf.int64))
        region = region_bounds(augment.warp_image(image, m, H, W).numpy())
        got, _ = augment.clip_and_filter_boxes(
            augment.transform_boxes(tf.constant([box]), m, W, H), tf.constant([0]), W, H
        )
        if region is None or got.shape[0] == 0:
            assert region is None or (region[2:] - region[:2]).min() <= 2
            continue
        np.testing.assert_allclose(got.numpy()[0], region, atol=1.0, err_msg=f"seed {k}")
        checked += 1
    assert checked >= 10


def test_sampled_matrix_is_deterministic_per_seed():
    spatial = SpatialAugmentation(
        hflip_probability=0.5, translate_max_x=5, zoom_min=0.8, zoom_max=1.2, rotate_rad_max=0.3
    )
    seed = tf.constant([3, 9], tf.int64)
    a = augment.sample_spatial_matrix(spatial, W, H, seed).numpy()
    b = augment.sample_spatial_matrix(spatial, W, H, seed).numpy()
    c = augment.sample_spatial_matrix(spatial, W, H, tf.constant([3, 10], tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sampled_translation_is_integer_in_range():
    # Only translation enabled: the matrix is [[1, 0, tx], [0, 1, ty]] with integer tx in [-3, 3].
    spatial = SpatialAugmentation(translate_max_x=3, translate_max_y=1)
    shifts = set()
    for k in range(150):
        m = augment.sample_spatial_matrix(spatial, W, H, tf.constant([1, k], tf.int64)).numpy()
        np.testing.assert_array_equal(m[:2, :2], np.eye(2))
        tx, ty = m[0, 2], m[1, 2]
        assert tx == round(tx) and ty == round(ty) and abs(ty) <= 1
        shifts.add(int(tx))
    assert shifts == {-3, -2, -1, 0, 1, 2, 3}


def test_sampled_zoom_keeps_image_inside_canvas_when_zooming_out():
    # ratio r in [1.5, 2]: the image shrinks to 64 / r and its offset lies in [0, 64 - 64 / r],
    # so the whole image stays on the canvas.
    spatial = SpatialAugmentation(zoom_min=1.5, zoom_max=2.0)
    for k in range(20):
        m = augment.sample_spatial_matrix(spatial, W, H, tf.constant([2, k], tf.int64)).numpy()
        scale = m[0, 0]
        assert 0.5 - 1e-9 <= scale <= 1 / 1.5 + 1e-9
        assert -1e-9 <= m[0, 2] <= W - W * scale + 1e-9
        assert -1e-9 <= m[1, 2] <= H - H * scale + 1e-9


def test_rotation_probability_zero_never_rotates():
    spatial = SpatialAugmentation(rotate_rad_max=0.5, rotate_probability=1e-9)
    for k in range(10):
        m = augment.sample_spatial_matrix(spatial, W, H, tf.constant([5, k], tf.int64)).numpy()
        np.testing.assert_allclose(m, np.eye(3), atol=1e-12)


def test_spec_defaults():
    from tao_qat.spec.proto import augmentation_config_pb2 as pb

    spatial = SpatialAugmentation.from_spec(pb.AugmentationConfig.SpatialAugmentation())
    assert (spatial.zoom_min, spatial.zoom_max, spatial.rotate_probability) == (1.0, 1.0, 1.0)
    message = pb.AugmentationConfig.Preprocessing(
        output_image_width=32, output_image_height=16, min_bbox_width=4.0
    )
    pre = Preprocessing.from_spec(message)
    assert (pre.width, pre.height, pre.channels, pre.crop, pre.scale) == (32, 16, 3, None, None)
    assert (pre.min_box_width, pre.min_box_height) == (4.0, 1.0)
    message.scale_height = 0.5
    assert Preprocessing.from_spec(message).scale == (1.0, 0.5)

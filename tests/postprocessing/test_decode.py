"""Grid decoding (§3.3) and box geometry: hand-computed values."""

import numpy as np
import pytest

from tao_qat.postprocessing.boxes import clip_boxes, pairwise_iou, rescale_boxes
from tao_qat.postprocessing.decode import decode_bbox, grid_centers


def test_grid_centers_use_offset_not_cell_middle():
    gx, gy = grid_centers((2, 3), (16, 8), offset=0.5)
    np.testing.assert_allclose(gx, [0.5, 16.5, 32.5])
    np.testing.assert_allclose(gy, [0.5, 8.5])


def test_decode_single_cell_by_hand():
    bbox = np.zeros((2, 3, 4), np.float32)  # Gh=2, Gw=3, one class
    bbox[1, 2] = [0.5, 0.2, 1.0, 0.4]  # row j=1, column i=2
    boxes = decode_bbox(bbox, 16)
    assert boxes.shape == (2, 3, 1, 4)
    # gx = 2*16 + 0.5 = 32.5, gy = 1*16 + 0.5 = 16.5, scale 35:
    # x1 = 32.5 - 17.5 = 15, y1 = 16.5 - 7 = 9.5, x2 = 32.5 + 35 = 67.5, y2 = 16.5 + 14 = 30.5
    np.testing.assert_allclose(boxes[1, 2, 0], [15.0, 9.5, 67.5, 30.5], atol=1e-5)
    # All-zero encodings collapse onto the anchor point.
    np.testing.assert_allclose(boxes[0, 1, 0], [16.5, 0.5, 16.5, 0.5])


def test_decode_class_major_channels_batch_and_anisotropic_stride():
    bbox = np.zeros((2, 1, 2, 8), np.float32)  # B=2, Gh=1, Gw=2, C=2
    bbox[1, 0, 1, 4:8] = [1.0, 1.0, 1.0, 1.0]  # class 1 of image 1, cell i=1
    boxes = decode_bbox(bbox, (16, 8), scale=10.0, offset=0.0)
    assert boxes.shape == (2, 1, 2, 2, 4)
    # gx = 16, gy = 0: (16 - 10, 0 - 10, 16 + 10, 0 + 10)
    np.testing.assert_allclose(boxes[1, 0, 1, 1], [6.0, -10.0, 26.0, 10.0])
    np.testing.assert_allclose(boxes[1, 0, 1, 0], [16.0, 0.0, 16.0, 0.0])  # class 0 untouched
    np.testing.assert_allclose(boxes[0, 0, 1, 1], [16.0, 0.0, 16.0, 0.0])


def test_decode_inverts_tao_encoding():
    """L = (gx - X1) / 35 etc. (§3.3) decodes back to the box at every cell."""
    x1, y1, x2, y2 = 20.0, 12.0, 90.0, 50.0
    gx, gy = grid_centers((4, 6), 16)
    ltrb = np.stack(
        np.broadcast_arrays(
            (gx[None, :] - x1) / 35, (gy[:, None] - y1) / 35,
            (x2 - gx[None, :]) / 35, (y2 - gy[:, None]) / 35,
        ),
        axis=-1,
    )  # fmt: skip
    boxes = decode_bbox(ltrb, 16)
    np.testing.assert_allclose(boxes[..., 0, :].reshape(-1, 4), [[x1, y1, x2, y2]] * 24, atol=1e-4)


def test_decode_clip_as_tao_eval_path():
    bbox = np.zeros((1, 1, 8), np.float32)  # one cell at gx = gy = 0.5, two classes
    bbox[0, 0, :4] = [1.0, 1.0, 2.0, 0.5]  # (-34.5, -34.5, 70.5, 18) before clipping
    bbox[0, 0, 4:] = [-2.0, -1.0, 3.0, 3.0]  # (70.5, 35.5, 105.5, 105.5): right of the frame
    boxes = decode_bbox(bbox, 16, image_size=(48, 32), clip=True)
    np.testing.assert_allclose(boxes[0, 0, 0], [0.0, 0.0, 48.0, 18.0])
    # x1 -> 48; x2 = max(min(105.5, 48), 48) = 48; y1 -> 32, y2 -> 32: empty but ordered.
    np.testing.assert_allclose(boxes[0, 0, 1], [48.0, 32.0, 48.0, 32.0])
    with pytest.raises(ValueError, match="image_size"):
        decode_bbox(bbox, 16, clip=True)


def test_clip_boxes_keeps_x2_at_least_x1():
    clipped = clip_boxes([[-5, 3, 2, 1], [10, 10, 30, 40]], (20, 20))
    np.testing.assert_allclose(clipped, [[0, 3, 2, 3], [10, 10, 20, 20]])


def test_pairwise_iou_conventions():
    a = [[0, 0, 9, 9]]
    b = [[5, 0, 14, 9]]
    # continuous: inter 4*9 = 36, union 81 + 81 - 36 = 126
    assert pairwise_iou(a, b)[0, 0] == pytest.approx(36 / 126)
    # +1 pixel: inter 5*10 = 50, areas 100, union 150
    assert pairwise_iou(a, b, border=1.0)[0, 0] == pytest.approx(1 / 3)
    # zero-area boxes give 0, not NaN
    assert pairwise_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0


def test_rescale_boxes_clips_then_scales():
    # input 384x240 -> original 768x480 (factor 2); x1 -10 clipped to 0, x2 400 to 384
    out = rescale_boxes([[-10, 10, 400, 100], [10, 20, 30, 50]], (384, 240), (768, 480))
    np.testing.assert_allclose(out, [[0, 20, 768, 200], [20, 40, 60, 100]])
    # anisotropic: x by 1000/384, y by 563/240
    out = rescale_boxes([[96, 60, 192, 120]], (384, 240), (1000, 563))
    np.testing.assert_allclose(out, [[250.0, 140.75, 500.0, 281.5]], rtol=1e-6)

"""Box geometry kernels (numpy): IoU matrices, clipping, rescaling to the original image (§4, §9).

All boxes are float arrays [..., 4] as (x1, y1, x2, y2) in pixels. Two IoU conventions exist in
TAO and both are served by ``border``:

- ``border=0`` (continuous areas, ``(x2 - x1) * (y2 - y1)``): DBSCAN distances (§4.1).
- ``border=1`` (pixel-inclusive, ``(x2 - x1 + 1) * (y2 - y1 + 1)``): NMS (§4.1, §4.2) and the
  evaluation matching (§5, TAO's ``border_pixels='include'``).
"""

import numpy as np


def box_areas(boxes, border=0.0):
    """Areas of float [..., 4] boxes; ``border`` is added to each side length."""
    boxes = np.asarray(boxes, np.float64)
    return (boxes[..., 2] - boxes[..., 0] + border) * (boxes[..., 3] - boxes[..., 1] + border)


def pairwise_iou(boxes_a, boxes_b, border=0.0, eps=0.0):
    """IoU of every pair: float64 [N, M] for boxes_a [N, 4] and boxes_b [M, 4].

    Args:
        border: added to widths/heights (1.0 = TAO's +1 pixel convention).
        eps: added to the union (TAO's DBSCAN uses 1e-5 to avoid 0/0).
    Zero unions give IoU 0 (not NaN).
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(inter_w + border, 0.0) * np.maximum(inter_h + border, 0.0)
    union = box_areas(a, border)[:, None] + box_areas(b, border)[None, :] - inter + eps
    return _safe_divide(inter, union)


def elementwise_iou(boxes_a, boxes_b, border=0.0, eps=0.0):
    """IoU of matching rows: float64 [N] for boxes_a, boxes_b [N, 4] (same conventions)."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    inter_w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    inter_h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(inter_w + border, 0.0) * np.maximum(inter_h + border, 0.0)
    union = box_areas(a, border) + box_areas(b, border) - inter + eps
    return _safe_divide(inter, union)


def _safe_divide(numerator, denominator):
    out = np.zeros(np.broadcast_shapes(numerator.shape, denominator.shape), np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def clip_boxes(boxes, image_size):
    """Clip boxes to a frame as TAO does (§3.3, §9): x1 to [0, W], x2 to [x1, W] (y alike).

    Args:
        boxes: float [..., 4] (x1, y1, x2, y2) in pixels of the frame.
        image_size: (width, height) of the frame in pixels.
    Returns:
        float32 [..., 4]; x2 >= x1 and y2 >= y1 afterwards.
    """
    width, height = image_size
    boxes = np.asarray(boxes, np.float32)
    x1 = np.clip(boxes[..., 0], 0.0, width)
    y1 = np.clip(boxes[..., 1], 0.0, height)
    x2 = np.maximum(np.minimum(boxes[..., 2], width), x1)
    y2 = np.maximum(np.minimum(boxes[..., 3], height), y1)
    return np.stack([x1, y1, x2, y2], axis=-1)


def rescale_boxes(boxes, input_size, original_size):
    """Map boxes from the network-input frame to the original image (TAO inference, §4.2 / §9).

    TAO clips to the input frame, then scales each box about its centre by (W_orig / W_in,
    H_orig / H_in); scaling the centre and the size by the same factor is the same as scaling
    the corners, which is what is computed here.

    Args:
        boxes: float [N, 4] in network-input pixels.
        input_size: (width, height) of the network input.
        original_size: (width, height) of the original image.
    Returns:
        float32 [N, 4] in original-image pixels.
    """
    scale_x = original_size[0] / input_size[0]
    scale_y = original_size[1] / input_size[1]
    factors = np.array([scale_x, scale_y, scale_x, scale_y], np.float64)
    return (clip_boxes(boxes, input_size).astype(np.float64) * factors).astype(np.float32)

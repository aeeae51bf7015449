"""Numpy bbox encoding of DetectNet_v2 (TAO digest §3.3): boxes <-> per-cell (L, T, R, B).

A cell (i = column, j = row) has the anchor point (gx, gy) = (i * stride_x + offset,
j * stride_y + offset) in input pixels (QUIRK: offset 0.5, not the cell centre). A box
(x1, y1, x2, y2) is encoded at that cell as
    L = (gx - x1) / scale,  T = (gy - y1) / scale,  R = (x2 - gx) / scale,  B = (y2 - gy) / scale,
and decoded by x1 = gx - scale * L, y1 = gy - scale * T, x2 = gx + scale * R, y2 = gy + scale * B
(the inference decoder in ``tao_qat.postprocessing`` uses the same formula). TF-free.
"""

import numpy as np

from tao_qat.objectives.params import DEFAULT_BBOX_OFFSET, DEFAULT_BBOX_SCALE


def cell_anchors(grid_shape, strides, offset=DEFAULT_BBOX_OFFSET):
    """Anchor points of every cell: (gx float32 [Gw], gy float32 [Gh]) in input pixels.

    Args:
        grid_shape: (rows, cols).
        strides: (stride_y, stride_x) in input pixels per cell.
        offset: anchor offset in pixels.
    """
    (g_h, g_w), (stride_y, stride_x) = grid_shape, strides
    gx = np.arange(g_w, dtype=np.float64) * stride_x + offset
    gy = np.arange(g_h, dtype=np.float64) * stride_y + offset
    return gx.astype(np.float32), gy.astype(np.float32)


def encode_boxes(boxes, gx, gy, scale=DEFAULT_BBOX_SCALE):
    """Encode boxes relative to anchor points.

    Args:
        boxes: float [..., 4] as (x1, y1, x2, y2) in input pixels.
        gx, gy: float anchor coordinates broadcastable to ``boxes[..., 0]``.
        scale: divisor (35 in NVIDIA specs).
    Returns:
        float32 [..., 4] as (L, T, R, B).
    """
    boxes = np.asarray(boxes, np.float64)
    gx, gy = np.asarray(gx, np.float64), np.asarray(gy, np.float64)
    parts = [gx - boxes[..., 0], gy - boxes[..., 1], boxes[..., 2] - gx, boxes[..., 3] - gy]
    ltrb = np.stack(np.broadcast_arrays(*parts), axis=-1)
    return (ltrb / scale).astype(np.float32)


def decode_boxes(ltrb, gx, gy, scale=DEFAULT_BBOX_SCALE):
    """Inverse of ``encode_boxes``: (L, T, R, B) float [..., 4] -> (x1, y1, x2, y2) float32."""
    ltrb = np.asarray(ltrb, np.float64) * scale
    gx, gy = np.asarray(gx, np.float64), np.asarray(gy, np.float64)
    parts = [gx - ltrb[..., 0], gy - ltrb[..., 1], gx + ltrb[..., 2], gy + ltrb[..., 3]]
    boxes = np.stack(np.broadcast_arrays(*parts), axis=-1)
    return boxes.astype(np.float32)


def encode_grid(boxes, grid_shape, strides, scale=DEFAULT_BBOX_SCALE, offset=DEFAULT_BBOX_OFFSET):
    """Encode each of N boxes at every cell: float32 [N, Gh, Gw, 4] (L, T, R, B)."""
    gx, gy = cell_anchors(grid_shape, strides, offset)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 1, 1, 4)
    return encode_boxes(boxes, gx[None, None, :], gy[None, :, None], scale)


def decode_grid(bbox, strides, scale=DEFAULT_BBOX_SCALE, offset=DEFAULT_BBOX_OFFSET):
    """Decode a ``bbox`` grid (targets or ``output_bbox``) into absolute boxes at every cell.

    Args:
        bbox: float [Gh, Gw, 4C], channels 4c..4c+3 = (L, T, R, B) of class c.
        strides: (stride_y, stride_x) in input pixels per cell.
    Returns:
        float32 [Gh, Gw, C, 4] as (x1, y1, x2, y2) in input pixels (not clipped).
    """
    bbox = np.asarray(bbox)
    g_h, g_w = bbox.shape[:2]
    gx, gy = cell_anchors((g_h, g_w), strides, offset)
    ltrb = bbox.reshape(g_h, g_w, -1, 4)
    return decode_boxes(ltrb, gx[None, :, None], gy[:, None, None], scale)

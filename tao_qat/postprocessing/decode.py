"""Grid decoding: encoded (L, T, R, B) bbox outputs to absolute boxes in input pixels (§3.3).

For grid cell (i = column, j = row) with stride (sx, sy) = input size / grid size:
``gx = i * sx + offset``, ``gy = j * sy + offset`` (TAO's "cell centre" is ``i * 16 + 0.5``, not
``i * 16 + 8``) and ``x1 = gx - scale * L``, ``y1 = gy - scale * T``, ``x2 = gx + scale * R``,
``y2 = gy + scale * B``. NVIDIA specs use scale 35 and offset 0.5 everywhere.
"""

import numpy as np

from tao_qat.postprocessing.boxes import clip_boxes

DEFAULT_SCALE = 35.0
DEFAULT_OFFSET = 0.5


def as_stride(stride):
    """(sx, sy) floats from a scalar or a pair."""
    if np.ndim(stride) == 0:
        return float(stride), float(stride)
    sx, sy = stride
    return float(sx), float(sy)


def stride_from_sizes(image_size, grid_size):
    """Stride (sx, sy) = (W / Gw, H / Gh) for image_size (W, H) and grid_size (Gw, Gh)."""
    return image_size[0] / grid_size[0], image_size[1] / grid_size[1]


def grid_centers(grid_shape, stride, offset=DEFAULT_OFFSET):
    """Cell anchors in input pixels.

    Args:
        grid_shape: (Gh, Gw).
        stride: scalar or (sx, sy) in input pixels per cell.
    Returns:
        (gx float64 [Gw], gy float64 [Gh]) with ``gx[i] = i * sx + offset`` and
        ``gy[j] = j * sy + offset``.
    """
    sx, sy = as_stride(stride)
    grid_h, grid_w = grid_shape
    return np.arange(grid_w) * sx + offset, np.arange(grid_h) * sy + offset


def decode_bbox(
    bbox, stride, scale=DEFAULT_SCALE, offset=DEFAULT_OFFSET, image_size=None, clip=False
):
    """Decode encoded per-class (L, T, R, B) outputs to absolute boxes.

    Args:
        bbox: float [..., Gh, Gw, 4C], class-major channels (4c..4c+3 = L, T, R, B of class c);
            a leading batch axis (or several) is allowed.
        stride: scalar or (sx, sy), input pixels per grid cell.
        scale, offset: TAO's bbox normalisation (35.0 and 0.5 in all NVIDIA specs).
        image_size: (W, H) of the network input; needed when ``clip`` is true.
        clip: clip as TAO's evaluation path does (x1, y1 to [0, W|H]; x2, y2 to [x1|y1, W|H]).
    Returns:
        float32 [..., Gh, Gw, C, 4] as (x1, y1, x2, y2) in input pixels.
    """
    bbox = np.asarray(bbox, np.float32)
    if bbox.ndim < 3 or bbox.shape[-1] % 4:
        raise ValueError(f"bbox must be [..., Gh, Gw, 4C], got shape {bbox.shape}")
    grid_h, grid_w = bbox.shape[-3:-1]
    encoded = bbox.reshape(*bbox.shape[:-1], bbox.shape[-1] // 4, 4)
    gx, gy = grid_centers((grid_h, grid_w), stride, offset)
    gx = gx.astype(np.float32)[:, None]  # [Gw, 1]: broadcasts over the class axis
    gy = gy.astype(np.float32)[:, None, None]  # [Gh, 1, 1]
    scale = np.float32(scale)
    boxes = np.stack(
        [
            gx - scale * encoded[..., 0],
            gy - scale * encoded[..., 1],
            gx + scale * encoded[..., 2],
            gy + scale * encoded[..., 3],
        ],
        axis=-1,
    )
    if clip:
        if image_size is None:
            raise ValueError("decode_bbox(clip=True) needs image_size=(W, H)")
        boxes = clip_boxes(boxes, image_size)
    return boxes

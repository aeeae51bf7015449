"""Preprocessing and spatial augmentation of one image and its boxes as one affine map (§1.3).

Every spatial step (TAO's Scale, Crop, auto-resize, RandomFlip, RandomTranslation, RandomZoom,
RandomRotation) is a 3x3 matrix ``A`` acting on column vectors ``(x, y, 1)`` in continuous pixel
coordinates (pixel ``i`` covers ``[i, i + 1)``, so box edges and pixel borders coincide). The
steps compose into one matrix; the image is warped once with it (bilinear, zero background) and
the boxes go through the very same matrix (the axis-aligned box of the four transformed corners),
so boxes follow the image exactly. Random draws use stateless ops: a given ``seed`` (int [2])
always gives the same transform. Colour augmentation lives in ``tao_qat.data.color``.
"""

from dataclasses import dataclass

from tao_qat.common.tensorflow_setup import tf

_F = tf.float64  # matrices are built in float64 and cast to float32 where used


@dataclass(frozen=True)
class Preprocessing:
    """Deterministic preprocessing (``augmentation_config.preprocessing``).

    Attributes:
        width, height, channels: network input size (pixels) and channel count (1 or 3).
        auto_resize: resize every image (and its boxes) to width x height (bilinear); otherwise
            TAO's pad-right/bottom-with-zeros + crop, no resize.
        crop: (left, top, right, bottom) pixels of the (scaled) image placed at the canvas
            origin, or None (= (0, 0, width, height)).
        scale: (sx, sy) factors applied before the crop, or None.
        min_box_width, min_box_height: boxes narrower/lower than this after augmentation and
            clipping are dropped (never below 1 pixel).
    """

    width: int
    height: int
    channels: int = 3
    auto_resize: bool = False
    crop: tuple | None = None
    scale: tuple | None = None
    min_box_width: float = 1.0
    min_box_height: float = 1.0

    @classmethod
    def from_spec(cls, preprocessing):
        """Build from an ``AugmentationConfig.Preprocessing`` message (TAO's zero defaults)."""
        p = preprocessing
        crop = (p.crop_left, p.crop_top, p.crop_right, p.crop_bottom)
        crop = None if not any(crop) else tuple(int(v) for v in crop)
        scale = None
        if p.scale_width or p.scale_height:
            scale = (p.scale_width or 1.0, p.scale_height or 1.0)
        return cls(
            width=int(p.output_image_width),
            height=int(p.output_image_height),
            channels=int(p.output_image_channel) or 3,
            auto_resize=bool(p.enable_auto_resize),
            crop=crop,
            scale=scale,
            min_box_width=max(1.0, float(p.min_bbox_width)),
            min_box_height=max(1.0, float(p.min_bbox_height)),
        )


@dataclass(frozen=True)
class SpatialAugmentation:
    """Random spatial augmentation (``augmentation_config.spatial_augmentation``).

    Attributes:
        hflip_probability, vflip_probability: probability of a left-right / top-bottom flip.
        translate_max_x, translate_max_y: shifts are integers drawn uniformly in [-max, max] px.
        zoom_min, zoom_max: zoom ratio r ~ U(zoom_min, zoom_max); r > 1 renders the image
            smaller (zoom out), r < 1 larger; the zoomed image lands at a random position.
        rotate_rad_max: angle ~ U(-max, max) radians about the canvas centre.
        rotate_probability: probability of rotating.
    """

    hflip_probability: float = 0.0
    vflip_probability: float = 0.0
    translate_max_x: int = 0
    translate_max_y: int = 0
    zoom_min: float = 1.0
    zoom_max: float = 1.0
    rotate_rad_max: float = 0.0
    rotate_probability: float = 1.0

    @classmethod
    def from_spec(cls, spatial):
        """Build from a ``SpatialAugmentation`` message; zoom 0/0 means no zoom, rotate
        probability 0 means 1.0 (TAO)."""
        zoom_min, zoom_max = float(spatial.zoom_min), float(spatial.zoom_max)
        if zoom_min <= 0.0 and zoom_max <= 0.0:
            zoom_min = zoom_max = 1.0
        return cls(
            hflip_probability=float(spatial.hflip_probability),
            vflip_probability=float(spatial.vflip_probability),
            translate_max_x=int(spatial.translate_max_x),
            translate_max_y=int(spatial.translate_max_y),
            zoom_min=zoom_min,
            zoom_max=zoom_max,
            rotate_rad_max=float(spatial.rotate_rad_max),
            rotate_probability=float(spatial.rotate_probability) or 1.0,
        )


def _matrix(rows):
    return tf.stack([tf.stack([tf.cast(v, _F) for v in row]) for row in rows])


def translation_matrix(tx, ty):
    """(x, y) -> (x + tx, y + ty). Returns float64 [3, 3]."""
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale_matrix(sx, sy):
    """(x, y) -> (sx * x, sy * y) about the origin. Returns float64 [3, 3]."""
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def flip_matrix(horizontal, vertical, width, height):
    """Mirror inside a width x height canvas: x -> width - x if ``horizontal``, y -> height - y if
    ``vertical`` (bool scalars). Returns float64 [3, 3]."""
    h = tf.cast(horizontal, _F)
    v = tf.cast(vertical, _F)
    return _matrix([[1 - 2 * h, 0, h * width], [0, 1 - 2 * v, v * height], [0, 0, 1]])


def rotation_matrix(angle, width, height):
    """Rotate by ``angle`` radians about the centre (width / 2, height / 2) of the canvas.

    With y pointing down, a positive angle turns the image clockwise on screen.
    Returns float64 [3, 3].
    """
    angle = tf.cast(angle, _F)
    c, s = tf.cos(angle), tf.sin(angle)
    cx, cy = width / 2.0, height / 2.0
    return _matrix([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1]])


def zoom_matrix(ratio, tx, ty):
    """TAO zoom: (x, y) -> (x / ratio + tx, y / ratio + ty). Returns float64 [3, 3]."""
    inv = 1.0 / tf.cast(ratio, _F)
    return _matrix([[inv, 0, tx], [0, inv, ty], [0, 0, 1]])


def preprocessing_matrix(pre, image_width, image_height):
    """Matrix from decoded-image pixels to the network-input canvas (no randomness).

    Args:
        pre: Preprocessing.
        image_width, image_height: size of the decoded image (scalar tensors or numbers).
    Returns:
        float64 [3, 3]: auto-resize to the canvas (if enabled), then scale, then crop.
    """
    m = tf.eye(3, dtype=_F)
    if pre.auto_resize:
        sx = pre.width / tf.cast(image_width, _F)
        sy = pre.height / tf.cast(image_height, _F)
        m = scale_matrix(sx, sy)
    if pre.scale is not None:
        m = scale_matrix(*pre.scale) @ m
    if pre.crop is not None:
        m = translation_matrix(-pre.crop[0], -pre.crop[1]) @ m
    return m


def sample_spatial_matrix(spatial, width, height, seed):
    """Draw one random augmentation matrix, TAO's order: flip, translate, zoom, rotate.

    Args:
        spatial: SpatialAugmentation.
        width, height: canvas (network input) size in pixels (Python ints).
        seed: int32/int64 [2] stateless seed.
    Returns:
        float64 [3, 3] mapping canvas pixels to augmented canvas pixels.
    """
    u = tf.random.stateless_uniform([9], seed=seed, dtype=_F)
    flip = flip_matrix(
        u[0] < spatial.hflip_probability, u[1] < spatial.vflip_probability, width, height
    )
    # Integer shift uniform in [-max, max] (inclusive), like TAO.
    mx, my = spatial.translate_max_x, spatial.translate_max_y
    tx = tf.minimum(tf.floor(u[2] * (2 * mx + 1)), 2 * mx) - mx
    ty = tf.minimum(tf.floor(u[3] * (2 * my + 1)), 2 * my) - my
    shift = translation_matrix(tx, ty)
    ratio = spatial.zoom_min + u[4] * (spatial.zoom_max - spatial.zoom_min)
    # Offset of the zoomed image inside the canvas, uniform between 0 and size - size / ratio.
    zoom = zoom_matrix(ratio, u[5] * (width - width / ratio), u[6] * (height - height / ratio))
    angle = (2.0 * u[7] - 1.0) * spatial.rotate_rad_max
    angle = tf.where(u[8] < spatial.rotate_probability, angle, tf.zeros_like(angle))
    rotate = rotation_matrix(angle, width, height)
    return rotate @ zoom @ shift @ flip


def warp_image(image, matrix, height, width):
    """Warp ``image`` with ``matrix`` onto a height x width canvas (bilinear, zero background).

    Args:
        image: [h, w, C] uint8 (scaled by 1/255) or float32 in [0, 1].
        matrix: float [3, 3] from input pixels to output pixels (continuous coordinates).
        height, width: output size (ints).
    Returns:
        float32 [height, width, C] in [0, 1].
    """
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) * (1.0 / 255.0)
    # Output pixel index -> input pixel index: centres sit at index + 0.5 in continuous space.
    inv = (
        translation_matrix(-0.5, -0.5)
        @ tf.linalg.inv(tf.cast(matrix, _F))
        @ (translation_matrix(0.5, 0.5))
    )
    transform = tf.concat([tf.reshape(inv[:2, :], [6]), tf.zeros([2], _F)], axis=0)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=tf.cast(transform, tf.float32)[tf.newaxis],
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return warped[0]


def _corners(boxes, matrix):
    """Transformed corners of float64 [N, 4] boxes in polygon order: xs, ys float64 [N, 4]."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=1)
    xs = tf.stack([x1, x2, x2, x1], axis=1)
    ys = tf.stack([y1, y1, y2, y2], axis=1)
    m = tf.cast(matrix, _F)
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def _clipped_extent(xs, ys, width, height):
    """Axis-aligned box of each convex quad (xs, ys [N, 4]) intersected with the canvas.

    The extreme points of the intersection are among: quad corners inside the canvas, canvas
    corners inside the quad, and crossings of quad edges with the canvas borders.
    Returns float64 [N, 4]; all zeros where the quad misses the canvas.
    """
    eps = 1e-6
    nx, ny = tf.roll(xs, -1, axis=1), tf.roll(ys, -1, axis=1)  # edge ends
    dx, dy = nx - xs, ny - ys
    points_x, points_y, valid = (
        [xs],
        [ys],
        [(xs >= -eps) & (xs <= width + eps) & (ys >= -eps) & (ys <= height + eps)],
    )
    for cx, cy in ((0.0, 0.0), (width, 0.0), (width, height), (0.0, height)):
        cross = dx * (cy - ys) - dy * (cx - xs)  # [N, 4], one sign inside a convex quad
        inside = tf.reduce_all(cross >= -eps, 1) | tf.reduce_all(cross <= eps, 1)
        points_x.append(tf.fill(tf.shape(xs[:, :1]), tf.constant(cx, _F)))
        points_y.append(tf.fill(tf.shape(xs[:, :1]), tf.constant(cy, _F)))
        valid.append(inside[:, tf.newaxis])
    for border, along_x in ((0.0, True), (width, True), (0.0, False), (height, False)):
        start, delta = (xs, dx) if along_x else (ys, dy)
        other, other_delta, limit = (ys, dy, height) if along_x else (xs, dx, width)
        safe = tf.where(tf.abs(delta) > eps, delta, tf.ones_like(delta))
        t = (border - start) / safe
        cross_other = other + t * other_delta
        ok = (tf.abs(delta) > eps) & (t >= -eps) & (t <= 1 + eps)
        ok &= (cross_other >= -eps) & (cross_other <= limit + eps)
        on_border = tf.fill(tf.shape(xs), tf.constant(border, _F))
        points_x.append(on_border if along_x else cross_other)
        points_y.append(cross_other if along_x else on_border)
        valid.append(ok)
    px, py = tf.concat(points_x, 1), tf.concat(points_y, 1)
    valid = tf.concat(valid, 1)
    big = tf.constant(1e30, _F)
    box = tf.stack(
        [
            tf.reduce_min(tf.where(valid, px, big), 1),
            tf.reduce_min(tf.where(valid, py, big), 1),
            tf.reduce_max(tf.where(valid, px, -big), 1),
            tf.reduce_max(tf.where(valid, py, -big), 1),
        ],
        axis=1,
    )
    return tf.where(tf.reduce_any(valid, 1, keepdims=True), box, tf.zeros_like(box))


def transform_boxes(boxes, matrix, width=None, height=None):
    """Boxes through an affine matrix: the axis-aligned box of the transformed rectangle.

    Args:
        boxes: float32 [N, 4] as (x1, y1, x2, y2) in input pixels.
        matrix: float [3, 3] from input pixels to output pixels.
        width, height: if given, the transformed rectangle is first intersected with the
            canvas [0, width] x [0, height] (tighter than clipping its box when rotated);
            boxes missing the canvas become (0, 0, 0, 0).
    Returns:
        float32 [N, 4] as (x1, y1, x2, y2) in output pixels.
    """
    xs, ys = _corners(tf.cast(boxes, _F), matrix)
    if width is not None:
        return tf.cast(_clipped_extent(xs, ys, float(width), float(height)), tf.float32)
    out = tf.stack(
        [tf.reduce_min(xs, 1), tf.reduce_min(ys, 1), tf.reduce_max(xs, 1), tf.reduce_max(ys, 1)],
        axis=1,
    )
    return tf.cast(out, tf.float32)


def clip_and_filter_boxes(boxes, classes, width, height, min_width=1.0, min_height=1.0):
    """Clip boxes to the canvas [0, width] x [0, height]; drop boxes fully outside or smaller
    than min_width x min_height after clipping.

    Args:
        boxes: float32 [N, 4] (x1, y1, x2, y2) in canvas pixels; classes: int32 [N].
    Returns:
        (boxes float32 [K, 4], classes int32 [K]) of the kept boxes, in input order.
    """
    limits = tf.constant([width, height, width, height], tf.float32)
    clipped = tf.clip_by_value(boxes, 0.0, limits)
    w = clipped[:, 2] - clipped[:, 0]
    h = clipped[:, 3] - clipped[:, 1]
    keep = (w >= min_width) & (h >= min_height)
    return tf.boolean_mask(clipped, keep), tf.boolean_mask(classes, keep)

"""TensorFlow bbox rasterizer: cov / cov_norm / bbox training targets (TAO digest §3.2-3.3).

Re-implements TAO's ``rasterize_bbox`` custom op with stock TensorFlow ops, usable in graph
mode inside ``tf.data`` ``map`` (per batch, or per image through ``rasterize_image``).

How it is computed (see docs/objectives.md):
1. Per box (vectorised over [B, M]): coverage / deadzone ellipse in grid cells, cost normaliser
   and the (A, B, C) coefficients of the four L, T, R, B ramps, all float32 in TAO's order.
2. Boxes are sorted per image by ascending ymax (stable, so ties keep input order).
3. 4x4 supersampling, separable: the x terms of the samples are [B, M, 4*Gw], the y terms
   [B, M, 4*Gh]; their outer sum is tested against the unit circle and summed per cell, giving
   the deadzone fraction ``a`` and coverage fraction ``c`` of every box at every cell.
4. Compositing is TAO's sequential rule, folded (``tf.foldl``) over the sorted box axis and
   vectorised over images, cells and classes (a box only touches its class channel): a box whose
   deadzone ``a >= max_cov`` (a > 0) clears the cell; then if ``c >= max_cov`` (c > 0) it becomes
   the cell's writer and ``max_cov = c`` (implemented in the equivalent one-test form of
   ``_composite``). Only (max_cov, writer index) are carried.
5. Targets are gathered from the writer: cov = max_cov, cov_norm = inv_bbox_area * max_cov,
   bbox = A*i + B*j + C at the integer cell (i, j) (not multiplied by coverage).
"""

import numpy as np

from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.params import default_grid_shape
from tao_qat.objectives.rasterizer_numpy import NUM_SUBSAMPLES


class BboxRasterizer:
    """Turns padded ground-truth boxes into ``cov``, ``cov_norm`` and ``bbox`` targets.

    Args:
        params: ``RasterizerParams`` (per-class ellipse parameters, deadzone, scale, offset).
        input_shape: (height, width) of the network input in pixels.
        grid_shape: (rows, cols) of the output grid; default input / 16.
    """

    def __init__(self, params, input_shape, grid_shape=None):
        self.params = params
        self.input_shape = tuple(int(v) for v in input_shape)
        self.grid_shape = tuple(grid_shape or default_grid_shape(self.input_shape))
        (in_h, in_w), (g_h, g_w) = self.input_shape, self.grid_shape
        self.num_classes = params.num_classes
        self._to_grid = np.array([g_w / in_w, g_h / in_h, g_w / in_w, g_h / in_h], np.float32)
        self._class_table = np.stack(
            [
                params.per_class(name)
                for name in (
                    "cov_center_x",
                    "cov_center_y",
                    "cov_radius_x",
                    "cov_radius_y",
                    "bbox_min_radius",
                )
            ],
            axis=1,
        )  # [C, 5]
        # Sample positions i + (s + 0.5) / 4 of every cell, flattened cell-major: [4 * G].
        offsets = np.array([(s + 0.5) / NUM_SUBSAMPLES for s in range(NUM_SUBSAMPLES)], np.float32)
        self._samples_x = (np.arange(g_w, dtype=np.float32)[:, None] + offsets).reshape(-1)
        self._samples_y = (np.arange(g_h, dtype=np.float32)[:, None] + offsets).reshape(-1)
        scale = params.bbox_scale
        self._ramp_scale = (np.float32(in_w / (g_w * scale)), np.float32(in_h / (g_h * scale)))
        self._ramp_offset = np.float32(params.bbox_offset / scale)

    def __call__(self, boxes, classes, num_boxes=None):
        """Rasterize a batch.

        Args:
            boxes: float32 [B, M, 4] as (x1, y1, x2, y2) in input pixels (padded).
            classes: int [B, M] class ids; -1 (or any id outside [0, C)) = padding / unmapped.
            num_boxes: optional int [B]; boxes at index >= num_boxes[b] are ignored.
        Returns:
            dict ``cov`` float32 [B, Gh, Gw, C], ``cov_norm`` float32 [B, Gh, Gw, C],
            ``bbox`` float32 [B, Gh, Gw, 4C] (class-major L, T, R, B).
        """
        with tf.name_scope("bbox_rasterizer"):
            boxes = tf.cast(boxes, tf.float32)
            classes = tf.cast(classes, tf.int32)
            valid = (classes >= 0) & (classes < self.num_classes)
            if num_boxes is not None:
                index = tf.range(tf.shape(classes)[1])[None, :]
                valid &= index < tf.cast(num_boxes, tf.int32)[:, None]
            # One invalid dummy box per image keeps M >= 1 (gathers need a row to point at).
            batch = tf.shape(boxes)[0]
            boxes = tf.concat([boxes, tf.zeros([batch, 1, 4])], axis=1)
            classes = tf.concat([classes, tf.zeros([batch, 1], tf.int32)], axis=1)
            valid = tf.concat([valid, tf.zeros([batch, 1], tf.bool)], axis=1)
            boxes_grid = tf.where(valid[..., None], boxes * self._to_grid, 0.0)
            # Draw order: ascending ymax, stable.
            order = tf.argsort(boxes_grid[:, :, 3], axis=1, stable=True)
            boxes_grid = tf.gather(boxes_grid, order, batch_dims=1)
            classes = tf.gather(classes, order, batch_dims=1)
            valid = tf.gather(valid, order, batch_dims=1)
            safe_classes = tf.where(valid, classes, 0)
            shape = self._ellipses(boxes_grid, tf.gather(self._class_table, safe_classes))
            a, c = self._coverage(shape)
            one_hot = (
                tf.one_hot(safe_classes, self.num_classes) * tf.cast(valid, tf.float32)[..., None]
            )
            max_cov, writer = self._composite(a, c, one_hot)
            return self._gather_targets(boxes_grid, shape["inv_bbox_area"], max_cov, writer)

    def rasterize_image(self, boxes, classes):
        """One image: boxes float32 [M, 4] input pixels, classes int [M] -> targets without B."""
        targets = self(boxes[None], classes[None])
        return {name: value[0] for name, value in targets.items()}

    def _ellipses(self, boxes_grid, table):
        """Per-box ellipse geometry [B, M] (TAO ``bbox_from_rumpy_params``, same op order)."""
        xmin, ymin, xmax, ymax = tf.unstack(boxes_grid, axis=-1)
        ccx, ccy, crx, cry, min_r = tf.unstack(table, axis=-1)
        d = self.params.deadzone_radius
        cx = xmin + ccx * (xmax - xmin)
        cy = ymin + ccy * (ymax - ymin)
        sx = tf.where(ccx < 0.5, cx - xmin, xmax - cx)
        sy = tf.where(ccy < 0.5, cy - ymin, ymax - cy)
        csx = tf.maximum(crx * sx, 0.1)
        csy = tf.maximum(cry * sy, 0.1)
        csx, csy = tf.maximum(csx, min_r), tf.where(csx < min_r, min_r * csy / csx, csy)
        csx, csy = tf.where(csy < min_r, min_r * csx / csy, csx), tf.maximum(csy, min_r)
        dsx = tf.maximum(np.float32(1.0 - d) * csx + np.float32(d) * sx, csx)
        dsy = tf.maximum(np.float32(1.0 - d) * csy + np.float32(d) * sy, csy)
        oodsx, oodsy = 1.0 / dsx, 1.0 / dsy
        return {
            "cx": cx,
            "cy": cy,
            "oodsx": oodsx,
            "oodsy": oodsy,
            "inv_rcx": 1.0 / (csx * oodsx),
            "inv_rcy": 1.0 / (csy * oodsy),
            "inv_bbox_area": 1.0 / tf.maximum(csx * csy * 4.0, 1.0),
        }

    def _coverage(self, shape):
        """Deadzone and coverage fractions a, c: float32 [B, M, Gh, Gw] in {0, 1/16, ..., 1}."""
        g_h, g_w = self.grid_shape
        n = NUM_SUBSAMPLES
        tx = (
            self._samples_x * shape["oodsx"][..., None] + (-shape["cx"] * shape["oodsx"])[..., None]
        )
        ty = (
            self._samples_y * shape["oodsy"][..., None] + (-shape["cy"] * shape["oodsy"])[..., None]
        )
        txc, tyc = tx * shape["inv_rcx"][..., None], ty * shape["inv_rcy"][..., None]

        def fraction(x2, y2):
            inside = y2[:, :, :, None] + x2[:, :, None, :] < 1.0  # [B, M, n*Gh, n*Gw]
            dims = tf.concat([tf.shape(inside)[:2], [g_h, n, g_w, n]], axis=0)
            counts = tf.reduce_sum(tf.cast(tf.reshape(inside, dims), tf.float32), axis=[3, 5])
            return counts * np.float32(1.0 / n**2)

        return fraction(tx * tx, ty * ty), fraction(txc * txc, tyc * tyc)

    def _composite(self, a, c, one_hot):
        """TAO's per-cell draw rule over sorted boxes -> max_cov f32, writer i32 [B, Gh, Gw, C].

        TAO per box k: if a_k >= max_cov and a_k > 0, clear (max_cov = 0, no writer); then if
        c_k >= max_cov and c_k > 0, take (max_cov = c_k, writer = k). Equivalently, with
        s_k = max(a_k, c_k): if s_k > 0 and s_k >= max_cov then max_cov = c_k and writer =
        (k if c_k > 0 else none), else nothing changes. (If a_k fires, the take test is
        c_k >= 0; if only c_k fires, c_k > 0.) Only s needs the per-class expansion.
        """
        num_boxes = tf.shape(a)[1]
        strength = tf.maximum(a, c)[..., None] * one_hot[:, :, None, None, :]  # [B,M,Gh,Gw,C]
        box_index = tf.range(num_boxes)[None, :, None, None]
        writer_if_event = tf.where(c > 0.0, box_index, -1)  # [B, M, Gh, Gw]
        # Box-major for the fold: [M, B, Gh, Gw, C] and [M, B, Gh, Gw, 1].
        elems = (
            tf.transpose(strength, [1, 0, 2, 3, 4]),
            tf.transpose(c, [1, 0, 2, 3])[..., None],
            tf.transpose(writer_if_event, [1, 0, 2, 3])[..., None],
        )
        state_shape = tf.shape(strength[:, 0])

        def draw(state, box):
            max_cov, writer = state
            s_k, c_k, w_k = box
            event = (s_k > 0.0) & (s_k >= max_cov)
            return tf.where(event, c_k, max_cov), tf.where(event, w_k, writer)

        initial = (tf.zeros(state_shape), -tf.ones(state_shape, tf.int32))
        return tf.foldl(draw, elems, initial, parallel_iterations=1)

    def _ramp_coefficients(self, boxes_grid):
        """float32 [B, M, 4, 3]: (A, B, C) of the L, T, R, B ramps (TAO ``target_gradient``)."""
        xmin, ymin, xmax, ymax = tf.unstack(boxes_grid, axis=-1)
        dx = (xmax - xmin) * self._ramp_scale[0]
        dy = (ymax - ymin) * self._ramp_scale[1]
        o = self._ramp_offset
        zero = tf.zeros_like(xmin)

        def ramp(sx, sy, s_value, ex, ey, e_value):
            ddx, ddy = ex - sx, ey - sy
            d_value = (e_value - s_value) / tf.maximum(ddx * ddx + ddy * ddy, 0.01)
            coef_a, coef_b = d_value * ddx, d_value * ddy
            return tf.stack([coef_a, coef_b, s_value - (coef_a * sx + coef_b * sy)], axis=-1)

        return tf.stack(
            [
                ramp(xmin, zero, o + zero, xmax, zero, dx + o),  # L
                ramp(zero, ymin, o + zero, zero, ymax, dy + o),  # T
                ramp(xmin, zero, dx - o, xmax, zero, -o + zero),  # R
                ramp(zero, ymin, dy - o, zero, ymax, -o + zero),  # B
            ],
            axis=2,
        )

    def _gather_targets(self, boxes_grid, inv_bbox_area, max_cov, writer):
        g_h, g_w = self.grid_shape
        c = self.num_classes
        batch = tf.shape(max_cov)[0]
        has_writer = writer >= 0
        index = tf.reshape(tf.maximum(writer, 0), [batch, -1])  # [B, Gh*Gw*C]
        inv_area = tf.reshape(tf.gather(inv_bbox_area, index, batch_dims=1), tf.shape(max_cov))
        coef = tf.gather(self._ramp_coefficients(boxes_grid), index, batch_dims=1)
        coef = tf.reshape(coef, [batch, g_h, g_w, c, 4, 3])
        px = np.arange(g_w, dtype=np.float32)[None, None, :, None, None]
        py = np.arange(g_h, dtype=np.float32)[None, :, None, None, None]
        ramps = px * coef[..., 0] + py * coef[..., 1] + coef[..., 2]  # [B, Gh, Gw, C, 4]
        bbox = tf.where(has_writer[..., None], ramps, 0.0)
        return {
            "cov": max_cov,
            "cov_norm": tf.where(has_writer, inv_area * max_cov, 0.0),
            "bbox": tf.reshape(bbox, [batch, g_h, g_w, 4 * c]),
        }

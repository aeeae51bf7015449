"""Numpy reference of TAO's ``rasterize_bbox`` op: cov, cov_norm, bbox targets (TAO §3.2-3.3).

Written for clarity, one image at a time, with the box loop and the per-cell compositing rules
spelled out exactly as the TAO kernel applies them. Every value is computed in float32 with the
same operation order as TAO (and as ``tao_qat.objectives.rasterizer``), so the TensorFlow
rasterizer must agree with this one to float rounding. Slow; for tests and documentation.
"""

import numpy as np

from tao_qat.objectives.params import default_grid_shape

F32 = np.float32
NUM_SUBSAMPLES = 4  # 4 x 4 supersamples per output cell


def box_ellipse(box_grid, cls, deadzone_radius):
    """Coverage / deadzone ellipse of one box (TAO ``bbox_from_rumpy_params``), all float32.

    Args:
        box_grid: float32 [4] (xmin, ymin, xmax, ymax) in grid cells.
        cls: ``ClassRasterParams`` of the box's class.
        deadzone_radius: float in [0, 1].
    Returns:
        dict with cx, cy (ellipse centre, cells), oodsx, oodsy (1 / deadzone radii),
        rcx, rcy (coverage radii / deadzone radii) and inv_bbox_area.
    """
    xmin, ymin, xmax, ymax = (F32(v) for v in box_grid)
    ccx, ccy = F32(cls.cov_center_x), F32(cls.cov_center_y)
    crx, cry, min_r = F32(cls.cov_radius_x), F32(cls.cov_radius_y), F32(cls.bbox_min_radius)
    # 1. Centre of the ellipse.
    cx = xmin + ccx * (xmax - xmin)
    cy = ymin + ccy * (ymax - ymin)
    # 2. Half-extent towards the nearer box edge.
    sx = cx - xmin if ccx < F32(0.5) else xmax - cx
    sy = cy - ymin if ccy < F32(0.5) else ymax - cy
    # 3. Coverage radii, never below a tenth of a cell.
    csx = max(crx * sx, F32(0.1))
    csy = max(cry * sy, F32(0.1))
    # 4. bbox_min_radius, keeping the aspect ratio: first x, then y.
    csx, csy = max(csx, min_r), (min_r * csy / csx if csx < min_r else csy)
    csx, csy = (min_r * csx / csy if csy < min_r else csx), max(csy, min_r)
    # 5. Deadzone radii: interpolate between the coverage ellipse and the box half-extent.
    dsx = F32(1.0 - deadzone_radius) * csx + F32(deadzone_radius) * sx
    dsy = F32(1.0 - deadzone_radius) * csy + F32(deadzone_radius) * sy
    dsx, dsy = max(dsx, csx), max(dsy, csy)
    # 6. Unit-circle mapping of the deadzone, coverage radii in that space, cost normaliser.
    oodsx, oodsy = F32(1.0) / dsx, F32(1.0) / dsy
    return {
        "cx": cx,
        "cy": cy,
        "oodsx": oodsx,
        "oodsy": oodsy,
        "rcx": csx * oodsx,
        "rcy": csy * oodsy,
        "inv_bbox_area": F32(1.0) / max(csx * csy * F32(4.0), F32(1.0)),
    }


def supersampled_coverage(ellipse, grid_shape):
    """Fractions (a, c) of the 4x4 samples of every cell inside the deadzone / coverage ellipse.

    Sample (s, t) of cell (i, j) sits at (i + (s + 0.5) / 4, j + (t + 0.5) / 4) in grid cells.
    Returns two float32 [Gh, Gw] arrays with values in {0, 1/16, ..., 1}.
    """
    g_h, g_w = grid_shape
    px = np.arange(g_w, dtype=F32)[None, :]
    py = np.arange(g_h, dtype=F32)[:, None]
    inv_rcx, inv_rcy = F32(1.0) / ellipse["rcx"], F32(1.0) / ellipse["rcy"]
    m6, m7 = -ellipse["cx"] * ellipse["oodsx"], -ellipse["cy"] * ellipse["oodsy"]
    in_deadzone = np.zeros((g_h, g_w), np.int32)
    in_coverage = np.zeros((g_h, g_w), np.int32)
    for t in range(NUM_SUBSAMPLES):
        fy = py + F32((t + 0.5) / NUM_SUBSAMPLES)
        ty = fy * ellipse["oodsy"] + m7
        for s in range(NUM_SUBSAMPLES):
            fx = px + F32((s + 0.5) / NUM_SUBSAMPLES)
            tx = fx * ellipse["oodsx"] + m6
            txc, tyc = tx * inv_rcx, ty * inv_rcy
            in_coverage += txc * txc + tyc * tyc < F32(1.0)
            in_deadzone += tx * tx + ty * ty < F32(1.0)
    sample = F32(1.0 / NUM_SUBSAMPLES**2)
    return in_deadzone.astype(F32) * sample, in_coverage.astype(F32) * sample


def _gradient_from_endpoints(sx, sy, s_value, ex, ey, e_value):
    """Coefficients (A, B, C) of the linear ramp A*x + B*y + C through two points (TAO)."""
    dx, dy = ex - sx, ey - sy
    length2 = max(dx * dx + dy * dy, F32(0.01))  # degenerate edges clamped (QUIRK)
    d_value = (e_value - s_value) / length2
    a, b = d_value * dx, d_value * dy
    return a, b, s_value - (a * sx + b * sy)


def bbox_gradients(box_grid, input_shape, grid_shape, scale, offset):
    """float32 [4, 3]: (A, B, C) of the L, T, R, B ramps of one box; value = A*i + B*j + C.

    At integer cell (i, j) this gives L = (i*stride_x + offset - X1) / scale, etc., except for
    boxes thinner than 0.1 cell whose slope is damped by TAO's clamp.
    """
    xmin, ymin, xmax, ymax = (F32(v) for v in box_grid)
    (in_h, in_w), (g_h, g_w) = input_shape, grid_shape
    dx = (xmax - xmin) * F32(in_w / (g_w * scale))
    dy = (ymax - ymin) * F32(in_h / (g_h * scale))
    ox = oy = F32(offset / scale)
    zero = F32(0.0)
    return np.array(
        [
            _gradient_from_endpoints(xmin, zero, ox, xmax, zero, dx + ox),  # L
            _gradient_from_endpoints(zero, ymin, oy, zero, ymax, dy + oy),  # T
            _gradient_from_endpoints(xmin, zero, dx - ox, xmax, zero, -ox),  # R
            _gradient_from_endpoints(zero, ymin, dy - oy, zero, ymax, -oy),  # B
        ],
        dtype=F32,
    )


def rasterize_numpy(boxes, classes, params, input_shape, grid_shape=None):
    """Targets of one image, TAO style.

    Args:
        boxes: float32 [N, 4] as (x1, y1, x2, y2) in input pixels.
        classes: int [N] class ids (index into ``params.classes``); < 0 = ignored.
        params: ``RasterizerParams``.
        input_shape: (height, width) of the network input in pixels.
        grid_shape: (rows, cols) of the output grid; default input / 16.
    Returns:
        dict ``cov`` float32 [Gh, Gw, C], ``cov_norm`` float32 [Gh, Gw, C] and ``bbox``
        float32 [Gh, Gw, 4C] (channels 4c..4c+3 = encoded L, T, R, B of class c).
    """
    grid_shape = tuple(grid_shape or default_grid_shape(input_shape))
    g_h, g_w = grid_shape
    in_h, in_w = input_shape
    boxes = np.asarray(boxes, F32).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).reshape(-1)
    to_grid = np.array([g_w / in_w, g_h / in_h, g_w / in_w, g_h / in_h], F32)
    boxes_grid = boxes * to_grid
    num_classes = params.num_classes
    cov = np.zeros((g_h, g_w, num_classes), F32)
    cov_norm = np.zeros((g_h, g_w, num_classes), F32)
    bbox = np.zeros((g_h, g_w, 4 * num_classes), F32)
    px = np.arange(g_w, dtype=F32)[None, :, None]
    py = np.arange(g_h, dtype=F32)[:, None, None]

    for c in range(num_classes):
        members = [k for k in range(len(boxes)) if classes[k] == c]
        # Drawn by ascending ymax (bottom-most last, i.e. on top); ties keep input order.
        members.sort(key=lambda k: boxes_grid[k, 3])
        max_cov = np.zeros((g_h, g_w), F32)
        winner = np.full((g_h, g_w), -1)
        for k in members:
            ellipse = box_ellipse(boxes_grid[k], params.classes[c], params.deadzone_radius)
            a, cover = supersampled_coverage(ellipse, grid_shape)
            # A deadzone at least as strong as the current winner clears the cell ...
            clear = (a >= max_cov) & (a > 0)
            max_cov[clear], winner[clear] = 0, -1
            # ... and a coverage at least as strong as what is left takes it.
            take = (cover >= max_cov) & (cover > 0)
            max_cov[take], winner[take] = cover[take], k
        cov[:, :, c] = max_cov
        for k in members:
            cells = winner == k
            if not cells.any():
                continue
            ellipse = box_ellipse(boxes_grid[k], params.classes[c], params.deadzone_radius)
            cov_norm[:, :, c][cells] = ellipse["inv_bbox_area"] * max_cov[cells]
            coef = bbox_gradients(
                boxes_grid[k], input_shape, grid_shape, params.bbox_scale, params.bbox_offset
            )
            ramps = px * coef[:, 0] + py * coef[:, 1] + coef[:, 2]  # [Gh, Gw, 4]
            bbox[:, :, 4 * c : 4 * c + 4][cells] = ramps[cells]
    return {"cov": cov, "cov_norm": cov_norm, "bbox": bbox}

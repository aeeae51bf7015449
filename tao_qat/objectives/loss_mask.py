"""Loss-mask filter (``loss_mask_label_filter``, TAO digest §1.10): re-weight cells of chosen boxes.

For every (target class t, objective o) named by a filter config, the boxes of class t that
match ANY of its label filters are rasterized into a binary grid (a cell is hit when any of its
5x5 samples at (i + (2k+1)/10, j + (2l+1)/10) lies in the box, TAO's polygon rasterizer with
``one_hot=False``); hit cells get ``mask_multiplier``, all others 1. With
``preserve_ground_truth`` cells where the class's ``cov`` target is > 0 are never hit.
(class, objective) pairs without a filter get no mask (1 everywhere).

TAO quirks kept: a proto field left at 0 counts as "not set" (TAO builds filters from
``ListFields()``): ``min_width: 0`` is no bound, and a crop filter with ANY coordinate 0 (or all 0)
matches every box; an unset ``mask_multiplier`` is 0, i.e. matched cells are ignored.
Not supported: ``source_class_label_filter`` (our batches carry mapped target classes only).
"""

from dataclasses import dataclass

import numpy as np

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.params import OBJECTIVE_NAMES, default_grid_shape

NUM_MASK_SAMPLES = 5


@dataclass(frozen=True)
class BoxDimensionsRule:
    """Matches boxes with min <= width/height <= max (input pixels); None = no bound."""

    min_width: float = None
    min_height: float = None
    max_width: float = None
    max_height: float = None

    def matches(self, boxes):
        """bool [B, M] for boxes float32 [B, M, 4]."""
        width = boxes[..., 2] - boxes[..., 0]
        height = boxes[..., 3] - boxes[..., 1]
        match = tf.ones_like(width, tf.bool)
        for value, bound, check in (
            (width, self.min_width, tf.greater_equal),
            (width, self.max_width, tf.less_equal),
            (height, self.min_height, tf.greater_equal),
            (height, self.max_height, tf.less_equal),
        ):
            if bound is not None:
                match &= check(value, np.float32(bound))
        return match


@dataclass(frozen=True)
class BoxCropRule:
    """Matches boxes overlapping the crop rectangle (input pixels); ``None`` bounds disable it."""

    crop_left: float = None
    crop_right: float = None
    crop_top: float = None
    crop_bottom: float = None

    @property
    def active(self):
        bounds = (self.crop_left, self.crop_right, self.crop_top, self.crop_bottom)
        return all(b is not None for b in bounds) and any(b != 0 for b in bounds)

    def matches(self, boxes):
        """bool [B, M] for boxes float32 [B, M, 4]."""
        x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
        if not self.active:
            return tf.ones_like(x1, tf.bool)
        f = np.float32
        return (
            (x1 < f(self.crop_right))
            & (x2 > f(self.crop_left))
            & (y1 < f(self.crop_bottom))
            & (y2 > f(self.crop_top))
        )


@dataclass(frozen=True)
class MaskRule:
    """One filter config: a rule applied to the given classes (ids) and objectives (names)."""

    rule: object
    class_ids: tuple
    objectives: tuple


class LossMaskFilter:
    """Rasterizes loss masks for the (class, objective) pairs named by ``rules``.

    Args:
        rules: list of ``MaskRule``.
        num_classes: C.
        mask_multiplier: value of hit cells.
        preserve_ground_truth: never hit cells whose ``cov`` target is > 0.
        input_shape: (height, width) of the network input.
        grid_shape: (rows, cols); default input / 16.
    """

    def __init__(
        self,
        rules,
        num_classes,
        mask_multiplier,
        preserve_ground_truth,
        input_shape,
        grid_shape=None,
    ):
        self.rules = list(rules)
        self.num_classes = num_classes
        self.mask_multiplier = float(mask_multiplier)
        self.preserve_ground_truth = bool(preserve_ground_truth)
        self.input_shape = tuple(input_shape)
        self.grid_shape = tuple(grid_shape or default_grid_shape(self.input_shape))
        (in_h, in_w), (g_h, g_w) = self.input_shape, self.grid_shape
        self._to_grid = np.array([g_w / in_w, g_h / in_h, g_w / in_w, g_h / in_h], np.float32)
        self._samples_x = _polygon_samples(g_w)
        self._samples_y = _polygon_samples(g_h)

    @classmethod
    def from_spec(cls, objective_label_filter, class_names, input_shape, grid_shape=None):
        """Build from an ``ObjectiveLabelFilter`` message; None when it has no filter configs.

        Raises:
            SpecError: unknown class / objective names, a source-class filter (unsupported), an
                empty label filter, or min >= max in a dimensions filter.
        """
        if (
            objective_label_filter is None
            or not objective_label_filter.objective_label_filter_configs
        ):
            return None
        class_names = list(class_names)
        rules = []
        for i, config in enumerate(objective_label_filter.objective_label_filter_configs):
            path = f"loss_mask_label_filter.objective_label_filter_configs[{i}]"
            for name in config.target_class_names:
                if name not in class_names:
                    raise SpecError(
                        f"{path}.target_class_names: unknown class '{name}' (have {class_names})"
                    )
            for name in config.objective_names:
                if name not in OBJECTIVE_NAMES:
                    raise SpecError(
                        f"{path}.objective_names: unknown objective '{name}' "
                        f"(have {list(OBJECTIVE_NAMES)})"
                    )
            class_ids = [class_names.index(n) for n in config.target_class_names]
            rules.append(
                MaskRule(
                    rule=_rule_from_label_filter(config.label_filter, f"{path}.label_filter"),
                    class_ids=tuple(class_ids or range(len(class_names))),
                    objectives=tuple(config.objective_names or OBJECTIVE_NAMES),
                )
            )
        return cls(
            rules,
            len(class_names),
            objective_label_filter.mask_multiplier,
            objective_label_filter.preserve_ground_truth,
            input_shape,
            grid_shape,
        )

    def __call__(self, boxes, classes, num_boxes=None, cov=None):
        """Loss masks of a batch.

        Args:
            boxes: float32 [B, M, 4] as (x1, y1, x2, y2) in input pixels.
            classes: int [B, M] class ids (-1 = padding).
            num_boxes: optional int [B].
            cov: float32 [B, Gh, Gw, C] coverage targets (needed for preserve_ground_truth).
        Returns:
            dict ``cov`` / ``bbox`` -> float32 [B, Gh, Gw, C].
        """
        if self.preserve_ground_truth and cov is None:
            raise ValueError("preserve_ground_truth needs the cov targets (cov=...)")
        boxes = tf.cast(boxes, tf.float32)
        classes = tf.cast(classes, tf.int32)
        valid = classes >= 0
        if num_boxes is not None:
            valid &= tf.range(tf.shape(classes)[1])[None, :] < tf.cast(num_boxes, tf.int32)[:, None]
        hit_x, hit_y = self._box_cells(boxes * self._to_grid)  # [B, M, Gw], [B, M, Gh]
        matches = [rule.rule.matches(boxes) & valid for rule in self.rules]
        ones = tf.ones(tf.stack([tf.shape(boxes)[0], *self.grid_shape]))  # [B, Gh, Gw]
        masks = {}
        for objective in OBJECTIVE_NAMES:
            channels = []
            for c in range(self.num_classes):
                rules = [
                    m
                    for m, rule in zip(matches, self.rules, strict=True)
                    if c in rule.class_ids and objective in rule.objectives
                ]
                if not rules:
                    channels.append(ones)
                    continue
                selected = tf.cast(
                    tf.reduce_any(tf.stack(rules), axis=0) & (classes == c), tf.float32
                )
                raster = tf.einsum("bmj,bmi->bji", hit_y * selected[..., None], hit_x) > 0
                if self.preserve_ground_truth:
                    raster &= cov[..., c] <= 0
                channels.append(tf.where(raster, np.float32(self.mask_multiplier), 1.0))
            masks[objective] = tf.stack(channels, axis=-1)
        return masks

    def _box_cells(self, boxes_grid):
        """Per box, which columns / rows have a sample inside it: float32 {0, 1}."""
        x1, y1, x2, y2 = tf.unstack(boxes_grid, axis=-1)

        def hits(lo, hi, samples):  # samples [G, 5]
            lo, hi = tf.minimum(lo, hi)[..., None, None], tf.maximum(lo, hi)[..., None, None]
            inside = (samples >= lo) & (samples < hi)
            return tf.cast(tf.reduce_any(inside, axis=-1), tf.float32)

        return hits(x1, x2, self._samples_x), hits(y1, y2, self._samples_y)


def _polygon_samples(size):
    """float32 [size, 5] sample coordinates of TAO's polygon rasterizer (same float32 steps)."""
    f = np.float32
    n = NUM_MASK_SAMPLES
    step = f(1.0) / f(n)
    start = f(0.5) * step - f(0.5)
    samples = np.zeros((size, n), f)
    for x in range(size):
        s = (f(x) + f(0.5)) + start
        for k in range(n):
            samples[x, k] = s
            s = s + step
    return samples


def _rule_from_label_filter(label_filter, path):
    kind = label_filter.WhichOneof("label_filter_params")
    if kind is None:
        raise SpecError(f"{path}: no label filter set")
    if kind == "source_class_label_filter":
        raise SpecError(
            f"{path}.source_class_label_filter: not supported (batches carry mapped target "
            "classes only; use bbox_dimensions_label_filter or bbox_crop_label_filter)"
        )
    message = getattr(label_filter, kind)

    def value(name):  # TAO builds filters from ListFields(): a 0 means "not set"
        v = getattr(message, name)
        return None if v == 0 else float(v)

    if kind == "bbox_dimensions_label_filter":
        rule = BoxDimensionsRule(
            *(value(n) for n in ("min_width", "min_height", "max_width", "max_height"))
        )
        for lo, hi, axis in (
            (rule.min_width, rule.max_width, "width"),
            (rule.min_height, rule.max_height, "height"),
        ):
            if lo is not None and hi is not None and not lo < hi:
                raise SpecError(f"{path}.{kind}: max_{axis} ({hi}) must be > min_{axis} ({lo})")
        return rule
    rule = BoxCropRule(*(value(n) for n in ("crop_left", "crop_right", "crop_top", "crop_bottom")))
    if rule.active and not (rule.crop_left < rule.crop_right and rule.crop_top < rule.crop_bottom):
        raise SpecError(f"{path}.{kind}: need crop_left < crop_right and crop_top < crop_bottom")
    return rule

"""Plain-value rasterizer parameters built from ``bbox_rasterizer_config`` (TAO digest §1.9, §3.2).

TF-free: used by the numpy reference rasterizer, the TensorFlow rasterizer and the docs.
"""

from dataclasses import dataclass

import numpy as np

from tao_qat.common.errors import SpecError

#: NVIDIA's bbox encoding constants (every shipped spec; the inference CLI hard-codes them).
DEFAULT_BBOX_SCALE = 35.0
DEFAULT_BBOX_OFFSET = 0.5

#: The learnable objectives, in the column order used by costs and objective weights.
OBJECTIVE_NAMES = ("cov", "bbox")


@dataclass(frozen=True)
class ClassRasterParams:
    """Coverage-ellipse parameters of one target class (fractions of the box; radius in cells).

    Attributes:
        cov_center_x, cov_center_y: ellipse centre as a fraction of the box width / height.
        cov_radius_x, cov_radius_y: ellipse radii as a fraction of the box half-extent.
        bbox_min_radius: minimum ellipse radius in grid cells (aspect ratio kept).
    """

    cov_center_x: float = 0.5
    cov_center_y: float = 0.5
    cov_radius_x: float = 0.4
    cov_radius_y: float = 0.4
    bbox_min_radius: float = 1.0


@dataclass(frozen=True)
class RasterizerParams:
    """Everything the rasterizer needs besides the image / grid sizes.

    Attributes:
        classes: one ``ClassRasterParams`` per target class, in network output order.
        deadzone_radius: in [0, 1]; 0 = deadzone equals the coverage ellipse, 1 = the box.
        bbox_scale: divisor of the (L, T, R, B) pixel distances (35 in NVIDIA specs).
        bbox_offset: anchor offset in pixels, anchor x = i * stride_x + offset (0.5).
        class_names: optional names, for messages only.
    """

    classes: tuple
    deadzone_radius: float = 0.67
    bbox_scale: float = DEFAULT_BBOX_SCALE
    bbox_offset: float = DEFAULT_BBOX_OFFSET
    class_names: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if not self.classes:
            raise ValueError("RasterizerParams needs at least one class")
        if self.bbox_scale <= 0:
            raise ValueError(f"bbox_scale must be > 0, got {self.bbox_scale}")

    @property
    def num_classes(self):
        return len(self.classes)

    def per_class(self, name):
        """float32 [C]: the ``ClassRasterParams`` field ``name`` of every class."""
        return np.array([getattr(c, name) for c in self.classes], dtype=np.float32)

    @classmethod
    def from_spec(cls, bbox_rasterizer_config, class_names, bbox_objective=None):
        """Build from a ``BboxRasterizerConfig`` message.

        Args:
            bbox_rasterizer_config: ``BboxRasterizerConfig`` (``target_class_config`` map +
                ``deadzone_radius``).
            class_names: target class names in network output order (cost_function_config).
            bbox_objective: ``ModelConfig.ObjectiveSet.BboxObjective`` (``scale``, ``offset``),
                or None for NVIDIA's 35 / 0.5.
        Raises:
            SpecError: a class has no rasterizer entry, or scale / offset are out of range.
        """
        per_class = bbox_rasterizer_config.target_class_config
        classes = []
        for name in class_names:
            if name not in per_class:
                raise SpecError(
                    f"bbox_rasterizer_config.target_class_config: no entry for target class "
                    f"'{name}' (have: {sorted(per_class)})"
                )
            entry = per_class[name]
            classes.append(
                ClassRasterParams(
                    cov_center_x=entry.cov_center_x,
                    cov_center_y=entry.cov_center_y,
                    cov_radius_x=entry.cov_radius_x,
                    cov_radius_y=entry.cov_radius_y,
                    bbox_min_radius=entry.bbox_min_radius,
                )
            )
        scale, offset = DEFAULT_BBOX_SCALE, DEFAULT_BBOX_OFFSET
        if bbox_objective is not None:
            scale, offset = bbox_objective.scale, bbox_objective.offset
            if not scale > 0:
                raise SpecError(f"model_config.objective_set.bbox.scale: must be > 0, got {scale}")
            if offset < 0:
                raise SpecError(
                    f"model_config.objective_set.bbox.offset: must be >= 0, got {offset}"
                )
        return cls(
            classes=tuple(classes),
            deadzone_radius=bbox_rasterizer_config.deadzone_radius,
            bbox_scale=scale,
            bbox_offset=offset,
            class_names=tuple(class_names),
        )


def grid_strides(input_shape, grid_shape):
    """(stride_y, stride_x) = input / grid in pixels per cell, as Python floats."""
    (in_h, in_w), (g_h, g_w) = input_shape, grid_shape
    return in_h / g_h, in_w / g_w


def default_grid_shape(input_shape, stride=16):
    """Grid (rows, cols) of a stride-``stride`` network for an input (height, width)."""
    in_h, in_w = input_shape
    if in_h % stride or in_w % stride:
        raise ValueError(f"input size {in_w}x{in_h} is not a multiple of the stride {stride}")
    return in_h // stride, in_w // stride

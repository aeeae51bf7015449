"""Per-image detections and ground truth as plain numpy containers (TF-free).

Coordinates are (x1, y1, x2, y2) in pixels of the frame they refer to (network input pixels
inside training/evaluation, original image pixels after ``qat inference`` rescaling).
Class ids index the ``cost_function_config.target_classes`` order.
"""

from dataclasses import dataclass, field

import numpy as np


def _as(array, dtype, shape_tail):
    array = np.asarray(array, dtype=dtype)
    return array.reshape((-1, *shape_tail)) if array.size == 0 else array


@dataclass
class Detections:
    """Detections of one image.

    Attributes:
        boxes: float32 [K, 4] as (x1, y1, x2, y2) in pixels.
        scores: float32 [K] confidences (DBSCAN: sum of coverage, may exceed 1).
        class_ids: int32 [K] indices into the target class list.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))

    def __post_init__(self):
        self.boxes = _as(self.boxes, np.float32, (4,))
        self.scores = _as(self.scores, np.float32, ())
        self.class_ids = _as(self.class_ids, np.int32, ())
        assert len(self.boxes) == len(self.scores) == len(self.class_ids)

    def __len__(self):
        return len(self.boxes)


@dataclass
class GroundTruth:
    """Ground-truth boxes of one image.

    Attributes:
        boxes: float32 [N, 4] as (x1, y1, x2, y2) in pixels.
        class_ids: int32 [N] indices into the target class list (-1 = unmapped, ignored).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))

    def __post_init__(self):
        self.boxes = _as(self.boxes, np.float32, (4,))
        self.class_ids = _as(self.class_ids, np.int32, ())
        assert len(self.boxes) == len(self.class_ids)

    def __len__(self):
        return len(self.boxes)

"""KITTI label and prediction files: parsing, validation and formatting (reference §10, §9).

A KITTI label line has 15 whitespace-separated fields: ``type truncated occluded alpha x1 y1 x2
y2 h w l x y z rotation_y``; a prediction line adds a 16th field, the confidence. Box
coordinates are (x1, y1, x2, y2) in pixels of the image the file belongs to. Class names are
lower-cased on reading, as TAO does. Malformed lines raise ``DataError`` naming ``file:line``.
TF-free.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tao_qat.common.errors import DataError

NUM_LABEL_FIELDS = 15
NUM_PREDICTION_FIELDS = 16

# 1-based field positions as named in the KITTI devkit (used in error messages).
FIELD_NAMES = (
    "type",
    "truncated",
    "occluded",
    "alpha",
    "bbox left",
    "bbox top",
    "bbox right",
    "bbox bottom",
    "height",
    "width",
    "length",
    "location x",
    "location y",
    "location z",
    "rotation_y",
    "score",
)


@dataclass
class KittiObject:
    """One object of a KITTI label (or prediction) line.

    Attributes:
        class_name: lower-cased class name.
        box: (x1, y1, x2, y2) floats in image pixels, as written in the file.
        truncation: float, 0 (fully visible) .. 1 (truncated).
        occlusion: int, 0..3.
        alpha: observation angle, radians.
        world_bbox: 7 floats (h, w, l, x, y, z, rotation_y); zeros for 2D-only data.
        score: confidence (prediction files only; None for labels).
        line: 1-based line number in the source file (0 if not read from a file).
        source_class: the class name as written in the file (before lower-casing).
    """

    class_name: str
    box: tuple
    truncation: float = 0.0
    occlusion: int = 0
    alpha: float = 0.0
    world_bbox: tuple = (0.0,) * 7
    score: float | None = None
    line: int = 0
    source_class: str = ""

    def is_degenerate(self):
        """TAO's skip rule: int(x1) >= int(x2) or int(y1) >= int(y2) (int truncates toward 0)."""
        x1, y1, x2, y2 = (math.trunc(v) for v in self.box)
        return not (x1 < x2 and y1 < y2)

    def int_box(self):
        """[int(x1), int(y1), int(x2), int(y2)] as TAO logs them in ``<prefix>_warning.json``."""
        return [math.trunc(v) for v in self.box]


@dataclass
class Frame:
    """One image and its objects, ready to become a tf.train.Example.

    Attributes:
        frame_id: ``<image_dir_name>/<stem>`` (no extension), relative to the image root.
        width, height: image size in pixels, read from the image file.
        objects: list of KittiObject (degenerate boxes already removed).
    """

    frame_id: str
    width: int
    height: int
    objects: list = field(default_factory=list)


def _number(token, index, where):
    try:
        value = float(token)
    except ValueError:
        raise DataError(
            f"{where}: field {index + 1} ({FIELD_NAMES[index]}) is not a number: {token!r}"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"{where}: field {index + 1} ({FIELD_NAMES[index]}) is not finite: {token!r}"
        )
    return value


def parse_kitti_line(line, where="<string>", with_score=False):
    """Parse one non-empty KITTI line into a KittiObject.

    Args:
        line: the text of the line.
        where: ``file:line`` used in error messages.
        with_score: expect the 16-field prediction format (last field = confidence).

    Raises:
        DataError: wrong field count, or a non-numeric or non-finite numeric field.
            (``occluded`` is read as a float and truncated to int, as TAO does.)
    """
    tokens = line.split()
    expected = NUM_PREDICTION_FIELDS if with_score else NUM_LABEL_FIELDS
    if len(tokens) != expected:
        kind = "KITTI prediction (15 label fields + score)" if with_score else "KITTI label"
        raise DataError(
            f"{where}: expected {expected} whitespace-separated fields for a {kind}, "
            f"got {len(tokens)}"
        )
    values = [_number(token, i, where) for i, token in enumerate(tokens[1:], start=1)]
    return KittiObject(
        class_name=tokens[0].lower(),
        truncation=values[0],
        occlusion=int(values[1]),
        alpha=values[2],
        box=tuple(values[3:7]),
        world_bbox=tuple(values[7:14]),
        score=values[14] if with_score else None,
        source_class=tokens[0],
    )


def _read_lines(path, with_score):
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = parse_kitti_line(line, where=f"{path}:{number}", with_score=with_score)
        obj.line = number
        objects.append(obj)
    return objects


def read_kitti_labels(path):
    """Read a KITTI label file; blank lines are ignored.

    Returns:
        list of KittiObject in file order (degenerate boxes included; see
        ``split_degenerate``).

    Raises:
        DataError: a malformed line (message ``<file>:<line>: ...``) or an undecodable file.
        FileNotFoundError: the file does not exist.
    """
    return _read_lines(path, with_score=False)


def split_degenerate(objects):
    """Split objects into (kept, skipped) by TAO's rule ``int(x1) >= int(x2) or int(y1) >= ...``."""
    kept = [obj for obj in objects if not obj.is_degenerate()]
    skipped = [obj for obj in objects if obj.is_degenerate()]
    return kept, skipped


@dataclass
class KittiPredictions:
    """Detections read from one KITTI prediction file.

    Attributes:
        boxes: float32 [N, 4] as (x1, y1, x2, y2) in image pixels.
        class_names: list of N lower-cased class names.
        scores: float32 [N] confidences (field 16).
    """

    boxes: np.ndarray
    class_names: list
    scores: np.ndarray

    def __len__(self):
        return len(self.class_names)


def read_kitti_predictions(path):
    """Read a KITTI prediction file (15 label fields + confidence per line).

    Raises:
        DataError: a malformed line, naming ``<file>:<line>``.
    """
    objects = _read_lines(path, with_score=True)
    boxes = np.array([obj.box for obj in objects], np.float32).reshape(-1, 4)
    scores = np.array([obj.score for obj in objects], np.float32)
    return KittiPredictions(boxes, [obj.class_name for obj in objects], scores)


def format_kitti_line(class_name, box, score=None):
    """Format one KITTI line as TAO's inference dump does (reference §9).

    ``<name> 0.00 0 0.00 x1 y1 x2 y2 0.00 0.00 0.00 0.00 0.00 0.00 0.00 [score]`` with box
    coordinates (and the score, if given) printed with 3 decimals.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    line = f"{class_name} 0.00 0 0.00 {x1:.3f} {y1:.3f} {x2:.3f} {y2:.3f} " + " ".join(["0.00"] * 7)
    if score is not None:
        line += f" {float(score):.3f}"
    return line

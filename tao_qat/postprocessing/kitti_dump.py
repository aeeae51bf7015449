"""KITTI detection dumps as written by ``qat inference`` (TAO §9 ``labels/<image_stem>.txt``).

One line per detection, 16 space-separated fields: the class name, truncation 0.00,
occlusion 0, alpha 0.00, the box (x1 y1 x2 y2), seven zero 3D fields and the confidence
last; box and confidence with 3 decimals:
``car 0.00 0 0.00 10.000 20.000 110.500 95.250 0.00 0.00 0.00 0.00 0.00 0.00 0.00 1.234``
The line itself is formatted by ``tao_qat.data.kitti.format_kitti_line`` (shared with the
label tools); this module adds the per-image text and the atomic file write.
"""

from tao_qat.common.fileio import atomic_write_text, check_writable_output
from tao_qat.data.kitti import format_kitti_line


def format_kitti_detections(detections, class_names):
    """The dump text of one image's Detections (one line per detection, '' when empty).

    Args:
        detections: Detections, boxes already in the pixels the dump should use (TAO: the
            original image, see ``postprocess.rescale_detections``).
        class_names: names written for each class id (e.g. ``inference_display_names``);
            a name must be non-empty and free of whitespace.
    """
    for name in {class_names[class_id] for class_id in detections.class_ids.tolist()}:
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f"{name!r} cannot be a KITTI class name (empty or has whitespace)")
    lines = [
        format_kitti_line(class_names[class_id], box, score)
        for box, score, class_id in zip(
            detections.boxes, detections.scores, detections.class_ids, strict=True
        )
    ]
    return "".join(line + "\n" for line in lines)


def write_kitti_detections(path, detections, class_names, force=False):
    """Write one image's dump atomically (an empty file when there are no detections).

    Raises OutputExistsError if ``path`` exists and ``force`` is false.
    """
    path = check_writable_output(path, force)
    atomic_write_text(path, format_kitti_detections(detections, class_names))
    return path

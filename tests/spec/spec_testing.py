"""Helpers shared by the spec tests: paths of the test specs and text-edit + validate helpers."""

from pathlib import Path

from tao_qat.spec.loader import SPEC_KINDS, parse_spec_text
from tao_qat.spec.validation import collect_errors

SPECS = Path(__file__).resolve().parent.parent / "data" / "specs"
DEFAULT_SPEC = SPECS / "default_spec.txt"
QAT_SPEC = SPECS / "detectnet_v2_retrain_resnet18_kitti_qat.txt"
KITTI_EXPORT_SPEC = SPECS / "detectnet_v2_tfrecords_kitti_trainval.txt"
INFERENCE_SPEC = SPECS / "inference_example.txt"
COCO_EXPORT_SPEC = SPECS / "coco_export_example.txt"


def edit(text, old, new, count=1):
    """Replace ``old`` by ``new`` in spec ``text``; fail if ``old`` occurs fewer than count."""
    assert text.count(old) >= count, f"{old!r} not in spec"
    return text.replace(old, new, count)


def errors_of(text, kind="experiment", source="spec.txt"):
    """Validation error lines of spec ``text`` parsed as ``kind``."""
    message = parse_spec_text(text, SPEC_KINDS[kind], source)
    return collect_errors(message, kind, source)

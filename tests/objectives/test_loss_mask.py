"""Loss-mask filter: hand-worked rasters, TAO's zero-means-unset quirks, spec errors."""

import numpy as np
import pytest
from google.protobuf import text_format

from tao_qat.common.errors import SpecError
from tao_qat.objectives.loss_mask import LossMaskFilter
from tao_qat.spec.proto import experiment_pb2

CLASSES = ["car", "person"]
# 64x64 input, grid 4x4. Box A (9, 9)-(41, 25) px = cells (0.5625, 0.5625)-(2.5625, 1.5625),
# 32 x 16 px. TAO's polygon rasterizer samples cell i at i + 0.1, 0.3, 0.5, 0.7, 0.9:
# columns 0 (0.7, 0.9), 1 and 2 (2.1 .. 2.5 < 2.5625) are hit, column 3 (3.1) is not;
# rows 0 (0.7, 0.9) and 1 (1.1 .. 1.5) are hit, row 2 (2.1) is not.
BOX_A = [9.0, 9.0, 41.0, 25.0]
HIT_A = np.zeros((4, 4), bool)
HIT_A[0:2, 0:3] = True
# Box B (40, 40)-(56, 56) px, 16 x 16 px = cells (2.5, 2.5)-(3.5, 3.5): cells (2..3, 2..3).
BOX_B = [40.0, 40.0, 56.0, 56.0]


def _filter(text):
    exp = text_format.Parse(
        f"loss_mask_label_filter {{ {text} }}", experiment_pb2.Experiment()
    ).loss_mask_label_filter
    return LossMaskFilter.from_spec(exp, CLASSES, (64, 64))


def _run(mask_filter, boxes, classes, cov=None):
    out = mask_filter(np.array([boxes], np.float32), np.array([classes], np.int32), cov=cov)
    return {k: v.numpy()[0] for k, v in out.items()}


DIMENSIONS = """
objective_label_filter_configs {
  label_filter { bbox_dimensions_label_filter { min_width: 30.0 } }
  target_class_names: "car"
  objective_names: "cov"
}
mask_multiplier: 0.5
"""


def test_dimensions_filter_masks_matching_boxes_of_the_named_class_and_objective():
    # Box A (width 32 >= 30, car) is hit; box B (width 16) is not; the person box A copy
    # is not (filter names "car" only); the bbox objective has no filter: all ones.
    masks = _run(_filter(DIMENSIONS), [BOX_A, BOX_B, BOX_A], [0, 0, 1])
    np.testing.assert_array_equal(masks["cov"][:, :, 0], np.where(HIT_A, 0.5, 1.0))
    np.testing.assert_array_equal(masks["cov"][:, :, 1], 1.0)
    np.testing.assert_array_equal(masks["bbox"], 1.0)


def test_preserve_ground_truth_keeps_cells_with_coverage():
    cov = np.zeros((1, 4, 4, 2), np.float32)
    cov[0, 1, 1, 0] = 0.3
    masks = _run(_filter(DIMENSIONS + "preserve_ground_truth: true"), [BOX_A], [0], cov=cov)
    expected = np.where(HIT_A, 0.5, 1.0)
    expected[1, 1] = 1.0
    np.testing.assert_array_equal(masks["cov"][:, :, 0], expected)


def test_unset_target_classes_and_objectives_mean_all_and_unset_multiplier_is_zero():
    # QUIRK: mask_multiplier left unset is 0, so matched cells are ignored entirely.
    mask_filter = _filter(
        "objective_label_filter_configs { label_filter { bbox_dimensions_label_filter "
        "{ max_height: 20.0 } } }"
    )
    masks = _run(mask_filter, [BOX_A, BOX_B], [1, 0])  # both boxes are <= 20 px tall
    hit_b = np.zeros((4, 4), bool)
    hit_b[2:4, 2:4] = True
    for objective in ("cov", "bbox"):
        np.testing.assert_array_equal(masks[objective][:, :, 0], np.where(hit_b, 0.0, 1.0))
        np.testing.assert_array_equal(masks[objective][:, :, 1], np.where(HIT_A, 0.0, 1.0))


def test_crop_filter_and_its_zero_quirk():
    crop = (
        "objective_label_filter_configs { label_filter { bbox_crop_label_filter "
        "{ crop_left: %s crop_right: 30 crop_top: 1 crop_bottom: 30 } } } mask_multiplier: 2.0"
    )
    # Crop (5, 1)-(30, 30) overlaps box A only.
    masks = _run(_filter(crop % 5), [BOX_A, BOX_B], [0, 0])
    np.testing.assert_array_equal(masks["cov"][:, :, 0], np.where(HIT_A, 2.0, 1.0))
    # QUIRK: crop_left 0 counts as unset, which disables the crop: every box matches.
    masks = _run(_filter(crop % 0), [BOX_A, BOX_B], [0, 0])
    assert (masks["cov"][:, :, 0] == 2.0).sum() == HIT_A.sum() + 4


def test_padding_boxes_are_ignored():
    masks = _run(_filter(DIMENSIONS), [BOX_A, BOX_A], [-1, -1])
    np.testing.assert_array_equal(masks["cov"], 1.0)


def test_no_configs_means_no_filter():
    assert _filter("mask_multiplier: 0.5") is None
    assert LossMaskFilter.from_spec(None, CLASSES, (64, 64)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "objective_label_filter_configs { label_filter { source_class_label_filter "
            '{ source_class_names: "van" } } }',
            r"configs\[0\].label_filter.source_class_label_filter: not supported",
        ),
        ("objective_label_filter_configs { }", r"configs\[0\].label_filter: no label filter set"),
        (
            "objective_label_filter_configs { label_filter { bbox_dimensions_label_filter "
            '{ min_width: 1 } } target_class_names: "truck" }',
            r"target_class_names: unknown class 'truck'",
        ),
        (
            "objective_label_filter_configs { label_filter { bbox_dimensions_label_filter "
            '{ min_width: 1 } } objective_names: "depth" }',
            r"objective_names: unknown objective 'depth'",
        ),
        (
            "objective_label_filter_configs { label_filter { bbox_dimensions_label_filter "
            "{ min_width: 10 max_width: 5 } } }",
            r"max_width \(5.0\) must be > min_width \(10.0\)",
        ),
    ],
)
def test_spec_errors(text, message):
    with pytest.raises(SpecError, match=message):
        _filter(text)

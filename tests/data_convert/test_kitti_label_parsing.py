"""KITTI label / prediction parsing: good lines, each kind of bad line, TAO's skip rule."""

import numpy as np
import pytest

from tao_qat.common.errors import DataError
from tao_qat.data.kitti import (
    KittiObject,
    format_kitti_line,
    parse_kitti_line,
    read_kitti_labels,
    read_kitti_predictions,
    split_degenerate,
)

GOOD = "Car 0.50 2 -1.57 599.41 156.40 629.75 189.25 2.85 2.63 12.34 0.47 1.49 69.44 -1.56"


def test_good_line_all_fields():
    obj = parse_kitti_line(GOOD)
    assert obj.class_name == "car"  # lower-cased
    assert obj.source_class == "Car"
    assert obj.truncation == pytest.approx(0.5)
    assert obj.occlusion == 2 and isinstance(obj.occlusion, int)
    assert obj.alpha == pytest.approx(-1.57)
    assert obj.box == pytest.approx((599.41, 156.40, 629.75, 189.25))
    assert obj.world_bbox == pytest.approx((2.85, 2.63, 12.34, 0.47, 1.49, 69.44, -1.56))
    assert obj.score is None


def test_occlusion_read_as_float_then_truncated_like_tao():
    obj = parse_kitti_line("van 0 1.0 0 1 2 3 4 0 0 0 0 0 0 0")
    assert obj.occlusion == 1


def test_real_label_file_with_fractional_coordinates(test_data):
    objects = read_kitti_labels(test_data / "people_vehicles" / "label_2" / "00000100.txt")
    assert [o.class_name for o in objects] == ["truck", "truck", "car"]
    assert objects[0].box == pytest.approx((603.0, 184.26, 829.0, 389.26))
    assert [o.line for o in objects] == [1, 2, 3]


def test_blank_lines_are_ignored_and_line_numbers_kept(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("\n" + GOOD + "\n   \n" + GOOD.replace("Car", "Pedestrian") + "\n")
    objects = read_kitti_labels(path)
    assert [(o.class_name, o.line) for o in objects] == [("car", 2), ("pedestrian", 4)]


def test_empty_file_has_no_objects(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert read_kitti_labels(path) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "car 0 0 0 1 2 3 4 0 0 0 0 0 0",
            "expected 15 whitespace-separated fields for a KITTI label, got 14",
        ),
        (GOOD + " 0.9", "expected 15 whitespace-separated fields for a KITTI label, got 16"),
        ("car 0 0 0 1 two 3 4 0 0 0 0 0 0 0", "field 6 (bbox top) is not a number: 'two'"),
        ("car 0 0 0 nan 2 3 4 0 0 0 0 0 0 0", "field 5 (bbox left) is not finite: 'nan'"),
        ("car 0 0 0 1 2 inf 4 0 0 0 0 0 0 0", "field 7 (bbox right) is not finite: 'inf'"),
        ("car 0 0 0 1 2 3 -Infinity 0 0 0 0 0 0 0", "field 8 (bbox bottom) is not finite"),
        ("car x 0 0 1 2 3 4 0 0 0 0 0 0 0", "field 2 (truncated) is not a number: 'x'"),
    ],
)
def test_bad_lines_name_file_line_and_problem(tmp_path, line, message):
    path = tmp_path / "000007.txt"
    path.write_text(GOOD + "\n\n" + line + "\n")
    with pytest.raises(DataError) as info:
        read_kitti_labels(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3: ")  # the blank line 2 still counts
    assert message in text
    assert "\n" not in text


def test_non_utf8_file_is_a_data_error(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xfe\x00car")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_kitti_labels(path)


@pytest.mark.parametrize(
    ("box", "degenerate"),
    [
        ((10.0, 5.0, 20.0, 15.0), False),
        ((10.2, 5.0, 10.9, 15.0), True),  # int(10.2) == int(10.9) == 10: TAO skips it
        ((10.0, 5.0, 11.0, 15.0), False),  # 10 < 11
        ((20.0, 5.0, 10.0, 15.0), True),  # inverted x
        ((0.0, 15.0, 10.0, 5.0), True),  # inverted y
        ((-0.5, 0.0, 0.5, 3.0), True),  # int() truncates toward zero: 0 >= 0
    ],
)
def test_tao_skip_rule(box, degenerate):
    obj = KittiObject("car", box)
    assert obj.is_degenerate() is degenerate


def test_split_degenerate_keeps_order():
    a, b, c = (KittiObject("car", box) for box in [(0, 0, 5, 5), (5, 0, 1, 5), (1, 1, 9, 9)])
    kept, skipped = split_degenerate([a, b, c])
    assert kept == [a, c] and skipped == [b]
    assert b.int_box() == [5, 0, 1, 5]


def test_read_predictions(tmp_path):
    path = tmp_path / "pred.txt"
    path.write_text(
        format_kitti_line("Car", (1, 2, 30.5, 40), score=0.875)
        + "\n"
        + format_kitti_line("person", (5, 6, 7, 8), score=1.25)
        + "\n"
    )
    predictions = read_kitti_predictions(path)
    assert len(predictions) == 2
    assert predictions.class_names == ["car", "person"]
    np.testing.assert_allclose(predictions.boxes, [[1, 2, 30.5, 40], [5, 6, 7, 8]])
    assert predictions.boxes.dtype == np.float32
    np.testing.assert_allclose(predictions.scores, [0.875, 1.25])


def test_read_empty_predictions_has_shapes(tmp_path):
    path = tmp_path / "none.txt"
    path.write_text("")
    predictions = read_kitti_predictions(path)
    assert predictions.boxes.shape == (0, 4) and predictions.scores.shape == (0,)


def test_prediction_needs_16_fields(tmp_path):
    path = tmp_path / "pred.txt"
    path.write_text(GOOD + "\n")
    with pytest.raises(DataError, match=r"pred.txt:1: expected 16 .* got 15"):
        read_kitti_predictions(path)


def test_prediction_score_must_be_finite(tmp_path):
    path = tmp_path / "pred.txt"
    path.write_text(GOOD + " nan\n")
    with pytest.raises(DataError, match=r"field 16 \(score\) is not finite"):
        read_kitti_predictions(path)


def test_format_matches_tao_inference_dump():
    line = format_kitti_line("car", (1, 2.5, 3.25, 4), score=0.5)
    assert (
        line == "car 0.00 0 0.00 1.000 2.500 3.250 4.000 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.500"
    )
    assert len(format_kitti_line("car", (1, 2, 3, 4)).split()) == 15


def test_data_modules_import_without_tensorflow():
    """Label reading, partitioning, COCO, the modifier and synthetic data are TF-free."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "import tao_qat.data.kitti, tao_qat.data.partition, tao_qat.data.coco\n"
        "import tao_qat.data.sample_modifier, tao_qat.data.sources, tao_qat.data.synthetic\n"
        "import tao_qat.data.convert, tao_qat.cli.dataset_convert\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

"""KITTI dump writer of ``qat inference`` (§9 format)."""

import numpy as np
import pytest

from tao_qat.common.detections import Detections
from tao_qat.common.errors import OutputExistsError
from tao_qat.data.kitti import read_kitti_predictions
from tao_qat.postprocessing.kitti_dump import format_kitti_detections, write_kitti_detections

DETECTIONS = Detections([[10, 20, 110.5, 95.25], [0.0004, 1, 2.0006, 3]], [1.23449, 0.5], [1, 0])


def test_format_exact_line():
    text = format_kitti_detections(DETECTIONS, ["car", "person"])
    assert text == (
        "person 0.00 0 0.00 10.000 20.000 110.500 95.250 0.00 0.00 0.00 0.00 0.00 0.00 0.00 1.234\n"
        "car 0.00 0 0.00 0.000 1.000 2.001 3.000 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.500\n"
    )
    assert format_kitti_detections(Detections(), ["car"]) == ""


def test_write_round_trips_through_the_prediction_reader(tmp_path):
    path = write_kitti_detections(tmp_path / "labels" / "img.txt", DETECTIONS, ["car", "person"])
    predictions = read_kitti_predictions(path)
    assert predictions.class_names == ["person", "car"]
    np.testing.assert_allclose(predictions.boxes, [[10, 20, 110.5, 95.25], [0, 1, 2.001, 3]])
    np.testing.assert_allclose(predictions.scores, [1.234, 0.5])
    with pytest.raises(OutputExistsError):
        write_kitti_detections(path, DETECTIONS, ["car", "person"])
    write_kitti_detections(path, Detections(), ["car"], force=True)
    assert path.read_text() == ""


def test_class_names_with_spaces_are_rejected():
    with pytest.raises(ValueError, match="'my car' cannot be a KITTI class name"):
        format_kitti_detections(DETECTIONS, ["my car", "person"])

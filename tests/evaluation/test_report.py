"""Report table, results.json and the precision/recall plot."""

import json

import pytest

from tao_qat.common.errors import OutputExistsError
from tao_qat.evaluation.report import format_table, plot_precision_recall, write_results_json


def test_table_rows_and_map_line(two_class_result):
    text = format_table(two_class_result)
    lines = text.splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:-1]]
    assert rows[1] == [
        "class",
        "AP (%)",
        "#GT",
        "#det",
        "TP",
        "FP",
        "max recall (%)",
        "best F1 (%)",
    ]
    # AP 5/6 = 83.33 %, 2 GT, 3 detections, 2 TP, 1 FP, recall 100 %, best F1 0.8
    assert rows[3] == [
        "car",
        "83.33",
        "2",
        "3",
        "2",
        "1",
        "100.00",
        "80.00",
    ]
    # mAP = (5/6 + 1) / 2 = 91.6667 %
    assert lines[-1] == "Mean average precision (in %): 91.6667 (VOC2010+ area)"


def test_results_json(tmp_path, two_class_result):
    path = write_results_json(tmp_path / "results.json", two_class_result, extra={"model": "m"})
    data = json.loads(path.read_text())
    assert data["mean_average_precision"] == pytest.approx(11 / 12)
    assert data["classes"]["person"]["average_precision"] == 1.0
    assert data["classes"]["car"]["false_positives"] == 1
    assert data["model"] == "m"
    with pytest.raises(OutputExistsError):
        write_results_json(path, two_class_result)
    write_results_json(path, two_class_result, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp files left


def test_precision_recall_png(tmp_path, two_class_result):
    path = plot_precision_recall(tmp_path / "pr.png", two_class_result)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (768, 576)  # 6.4 x 4.8 inches at 120 dpi
    with pytest.raises(OutputExistsError):
        plot_precision_recall(path, two_class_result)

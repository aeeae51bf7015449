"""Pictures of the demo: per-tile matching, tile choice, side-by-side sheets, plots."""

import numpy as np
import pytest
from PIL import Image

from tao_qat.demo import figures
from tao_qat.demo.pictures import choose_tiles


def test_match_image_greedy_by_confidence():
    gt = [[0, 0, 9, 9], [20, 20, 29, 29]]
    # det 0 (score 0.9) covers gt 0 exactly: TP. det 1 (0.8) duplicates gt 0: FP.
    # det 2 (0.7) is (5, 0, 14, 9) on gt 0: IoU 50/150 = 0.333 with the +1 px rule, and gt 0
    # is taken anyway: FP. gt 1 is missed.
    boxes = [[0, 0, 9, 9], [0, 0, 9, 9], [5, 0, 14, 9]]
    tp, matched = figures.match_image(boxes, [0.9, 0.8, 0.7], gt, iou_threshold=0.4)
    assert tp.tolist() == [True, False, False] and matched.tolist() == [True, False]


def test_match_image_threshold_and_empty_inputs():
    tp, matched = figures.match_image([[5, 0, 14, 9]], [0.5], [[0, 0, 9, 9]], 0.3)
    assert tp.tolist() == [True]  # IoU 0.333 >= 0.3
    tp, matched = figures.match_image(np.zeros((0, 4)), [], [[0, 0, 9, 9]], 0.4)
    assert tp.shape == (0,) and matched.tolist() == [False]
    tp, matched = figures.match_image([[0, 0, 9, 9]], [0.5], np.zeros((0, 4)), 0.4)
    assert tp.tolist() == [False] and matched.shape == (0,)


def test_choose_tiles_prefers_dense_tiles_where_ptq_and_qat_differ():
    counts = {  # variant: (TP, FP, missed); trees = FP32 TP + missed
        "a": {"fp32": (5, 0, 5), "ptq_int8": (1, 9, 9), "qat_int8": (5, 1, 5)},  # diff 4 + 8
        "b": {"fp32": (1, 0, 1), "ptq_int8": (0, 20, 2), "qat_int8": (2, 0, 0)},  # sparse
        "c": {"fp32": (8, 0, 2), "ptq_int8": (8, 0, 2), "qat_int8": (8, 0, 2)},  # same
        "d": {"fp32": (9, 1, 1), "ptq_int8": (9, 3, 1), "qat_int8": (9, 0, 1)},  # diff 3
    }
    # Median trees = median(10, 2, 10, 10) = 10: "b" is left out despite its difference.
    assert choose_tiles(counts, 2) == ["a", "d"]
    assert choose_tiles(counts, 5) == ["a", "d", "c"]


def test_comparison_picture_places_panels_side_by_side(tmp_path):
    tile = tmp_path / "tile.jpg"
    Image.new("RGB", (40, 30), (0, 0, 0)).save(tile)
    panel = ("t", [[2, 2, 12, 12]], np.array([True]), [[20, 5, 30, 15]], np.array([False]))
    out = figures.comparison_picture(tmp_path / "sheet.png", tile, [panel, panel], scale=2)
    with Image.open(out) as sheet:
        assert sheet.size == (2 * 80 + 8, 60 + 16)  # 2 panels of 80x60, gap 8, title 16
        pixels = sheet.convert("RGB")
        assert pixels.getpixel((4, 16 + 4)) == figures.TP_COLOR  # TP box corner, scaled x2
        assert pixels.getpixel((40, 16 + 10)) == figures.MISSED_COLOR  # missed GT corner


def test_training_curves_and_pr_plots_are_written(tmp_path):
    runs = [
        (
            "FP32",
            [
                {"status": "STARTED"},
                {"epoch": 1, "loss": 0.1},
                {"epoch": 2, "loss": 0.05, "mean_average_precision": 0.3},
            ],
        ),
        ("QAT", [{"epoch": 1, "loss": 0.04, "mean_average_precision": 0.35}]),
    ]
    figures.plot_training_curves(tmp_path / "curves.png", runs)
    curve = {"tree": {"precision": [1.0, 0.5], "recall": [0.5, 0.5], "average_precision": 0.5}}
    figures.plot_pr_comparison(
        tmp_path / "pr.png",
        {"FP32": curve, "PTQ": {"tree": {"precision": [], "recall": [], "average_precision": 0.0}}},
    )
    for name in ("curves.png", "pr.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 500


@pytest.mark.parametrize("scale", [1, 3])
def test_draw_panel_colours(tmp_path, scale):
    image = Image.new("RGB", (20 * scale, 20 * scale))
    drawn = figures.draw_panel(
        image, np.array([[0, 0, 9, 9]]) * scale, [False], np.zeros((0, 4)), np.zeros(0, bool)
    )
    assert drawn.getpixel((0, 0)) == figures.FP_COLOR and image.getpixel((0, 0)) == (0, 0, 0)

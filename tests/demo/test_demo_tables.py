"""Tables 1 and 2 and the computed conclusions, from hand-made numbers."""

from tao_qat.demo import tables
from tao_qat.demo.document import (
    BulletList,
    Heading,
    Paragraph,
    Picture,
    Table,
    to_html,
    to_markdown,
)


def _results(mean, **classes):
    return {
        "mean_average_precision": mean,
        "classes": {name: {"average_precision": ap} for name, ap in classes.items()},
        "metadata": {"median_inference_seconds": 0.0125},
    }


def test_accuracy_table_rows_and_differences():
    table = tables.accuracy_table(
        _results(0.6, tree=0.6), _results(0.55, tree=0.55), _results(0.5925, tree=0.5925)
    )
    assert table.headers[1:4] == ["FP32 AP (%)", "PTQ INT8 AP (%)", "QAT INT8 AP (%)"]
    # PTQ - FP32 = -5.00 points, QAT - FP32 = -0.75, QAT - PTQ = +4.25.
    assert table.rows[0] == ["tree", "60.00", "55.00", "59.25", "-5.00", "-0.75", "+4.25"]
    assert table.rows[1][0] == "mean (mAP)" and table.rows[1][4:] == ["-5.00", "-0.75", "+4.25"]


def test_accuracy_table_with_a_missing_model_says_na():
    table = tables.accuracy_table(_results(0.6, tree=0.6), None, _results(0.6, tree=0.6))
    assert table.rows[0] == ["tree", "60.00", "n/a", "60.00", "n/a", "+0.00", "n/a"]


def test_tiny_negative_differences_do_not_print_minus_zero():
    assert tables.points(-1e-12) == "+0.00"
    assert tables.points(-0.0123) == "-1.23"


def test_conclusion_when_ptq_loses_and_qat_recovers():
    said = tables.conclusions(0.60, 0.50, 0.58, noise_points=1.0)
    assert said[0] == "PTQ INT8 loses 10.00 points of mAP against FP32 (-10.00)."
    assert said[1] == "QAT INT8 loses 2.00 points of mAP against FP32 (-2.00)."
    assert said[2] == "QAT INT8 gains 8.00 points of mAP against PTQ INT8 (+8.00)."
    assert said[3] == "QAT recovers 80% of the accuracy PTQ loses."  # 8 / 10


def test_conclusion_when_ptq_does_not_lose_says_so():
    said = tables.conclusions(0.60, 0.596, 0.605, noise_points=1.0)
    assert said[0].startswith("PTQ INT8 is within 1 point of FP32 (-0.40)")
    assert said[3].startswith("On this data PTQ does not lose accuracy")


def test_conclusion_when_qat_does_not_help():
    said = tables.conclusions(0.60, 0.50, 0.505, noise_points=1.0)
    assert said[2].startswith("QAT INT8 is within 1 point of PTQ INT8 (+0.50)")
    assert said[3] == "PTQ loses accuracy and QAT does not recover it on this data."


def test_no_conclusion_from_an_untrained_or_missing_model():
    assert "finds almost nothing" in tables.conclusions(0.01, 0.0, 0.0, 1.0)[0]
    assert "Not every model" in tables.conclusions(0.6, None, 0.6, 1.0)[0]


def test_throughput_speed_up_is_relative_to_the_first_variant():
    timings = {
        "fp32": {"1": {"images_per_second": 10.0}, "4": {"images_per_second": 16.0}},
        "int8": {"1": {"images_per_second": 25.0}},
    }
    table = tables.throughput_table(
        timings, {"fp32": "FP32", "int8": "INT8", "x": "absent"}, (1, 4)
    )
    assert table.rows == [
        ["FP32", "10.0", "1.00x", "16.0", "1.00x"],
        ["INT8", "25.0", "2.50x", "n/a", "n/a"],
    ]


def test_tensorrt_rows_only_when_measured():
    assert tables.tensorrt_rows({"skipped": "no GPU"}, (1,)) is None
    table = tables.tensorrt_rows(
        {"fp16": {"1": {"images_per_second": 300.0}}, "int8": {"1": {"images_per_second": 520.5}}},
        (1,),
    )
    assert table.rows == [["TensorRT FP16", "300.0"], ["TensorRT INT8", "520.5"]]


def test_size_table_uses_the_pruning_report():
    pruning = {
        "parameters": {"before": 4921413, "after": 2747005},
        "flops": {"before": 2.118e9, "after": 8.64e8},
    }
    table = tables.size_table(
        pruning, [("FP32", "before", "Keras .hdf5", 3 * 2**20), ("pruned", "after", "ONNX", None)]
    )
    assert table.rows == [
        ["FP32", "4,921,413", "2.118", "Keras .hdf5", "3.00"],
        ["pruned", "2,747,005", "0.864", "ONNX", "n/a"],
    ]


def test_workflow_and_step_time_tables():
    table = tables.workflow_table([("FP32", "Keras", _results(0.5)), ("QAT", "ORT", None)])
    assert table.rows == [["FP32", "Keras", "50.00", "12.5"], ["QAT", "ORT", "n/a", "n/a"]]
    times = tables.step_time_table([("a", "first", 1.25, "ran"), ("b", "second", None, "")])
    assert times.rows[-1] == ["total", "", "1.2", ""]  # 1.25 rounds half to even


def test_markdown_and_html_say_the_same():
    blocks = [
        Heading("Title <1>", 1),
        Paragraph("a & b"),
        BulletList(["x"]),
        Table(["name", "value"], [["tree", "1.00"]], caption="Table 1: t"),
        Picture("figures/p.png", "a picture"),
    ]
    md = to_markdown(blocks)
    assert md.startswith("# Title <1>\n\na & b\n\n- x\n\nTable 1: t\n\n| name ")
    assert "| tree   |    1.00 |" in md
    assert "![a picture](figures/p.png)" in md
    page = to_html(blocks, "report")
    assert "<h1>Title &lt;1&gt;</h1>" in page and "<p>a &amp; b</p>" in page
    assert "<td>tree</td><td>1.00</td>" in page and 'src="figures/p.png"' in page

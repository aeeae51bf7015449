"""``qat demo --quick`` end to end on the vendored tree tiles (about 3 minutes on 2 busy cores),
then a second run that must skip every step, then a damaged output that must be redone."""

import json
import math
import time

import pytest
from PIL import Image

from tao_qat.demo.run_demo import DemoOptions, run_demo
from tao_qat.demo.settings import QUICK


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "qat_demo"
    lines = []
    result = run_demo(DemoOptions(workdir=str(workdir), quick=True, echo=lines.append))
    return workdir, result, lines


def _json(path):
    return json.loads(path.read_text())


def test_every_step_ran_and_the_report_has_both_tables(quick_demo):
    workdir, result, lines = quick_demo
    assert result.missing == []
    assert {o.status for o in result.outcomes} == {"ran"}
    report = (workdir / "report.md").read_text()
    for text in (
        "Table 1: accuracy",
        "Table 2: FP32 vs INT8 throughput",
        "PTQ INT8 AP (%)",
        "QAT INT8 AP (%)",
        "Model size before and after pruning",
        "Step times",
    ):
        assert text in report
    assert "Table 1" in (workdir / "report.html").read_text()
    printed = "\n".join(lines)
    assert "Table 1: accuracy" in printed and "Table 2: FP32 vs INT8" in printed


def test_numbers_are_finite(quick_demo):
    workdir, _, _ = quick_demo
    for variant in ("fp32", "ptq_int8", "qat_int8", "qat_fp32", "ptq_cpu_int8", "qat_cpu_int8"):
        results = _json(workdir / "eval_onnx" / variant / "results.json")
        assert math.isfinite(results["mean_average_precision"]), variant
        assert results["classes"]["tree"]["num_ground_truth"] == 191  # all 10 validation tiles
    bench = _json(workdir / "benchmark" / "benchmark.json")["onnxruntime"]
    for timings in bench.values():
        for timing in timings.values():
            assert math.isfinite(timing["images_per_second"]) and timing["images_per_second"] > 0
    pruning = _json(workdir / "prune" / "model_pruned.pruning.json")
    assert pruning["parameters"]["after"] < pruning["parameters"]["before"]
    qat_export = _json(workdir / "export" / "qat" / "export.json")
    assert qat_export["calibration"] == "QAT ranges"
    # ResNet-10: QAT has no range for the 4 main-branch BN outputs TensorRT fuses into the Add
    # and the last block's ReLU, so the CPU INT8 export calibrates those 5; PTQ covers all.
    assert qat_export["cpu_int8_calibrated_tensors"] == 5
    assert _json(workdir / "export" / "ptq" / "export.json")["cpu_int8_calibrated_tensors"] == 0


def test_pictures_and_figures_exist(quick_demo):
    workdir, _, _ = quick_demo
    summary = _json(workdir / "figures" / "pictures" / "pictures.json")
    assert len(summary["pictures"]) == QUICK.num_pictures
    for name in summary["pictures"]:
        with Image.open(workdir / "figures" / "pictures" / name) as image:
            assert image.width == 3 * 384 + 2 * 8  # FP32 | PTQ INT8 | QAT INT8 panels
    for name in ("training_curves.png", "precision_recall.png"):
        with Image.open(workdir / "figures" / name) as image:
            assert image.format == "PNG"
    report = (workdir / "report.md").read_text()
    assert "figures/pictures/" + summary["pictures"][0] in report


def test_second_run_skips_every_step_quickly(quick_demo):
    workdir, _, _ = quick_demo
    start = time.monotonic()
    again = run_demo(DemoOptions(workdir=str(workdir), quick=True, echo=lambda _: None))
    seconds = time.monotonic() - start
    assert {o.status for o in again.outcomes} == {"done"}
    assert seconds < 30, f"second run took {seconds:.1f} s"


def test_a_damaged_output_is_redone_with_what_depends_on_it(quick_demo):
    workdir, _, _ = quick_demo
    path = workdir / "benchmark" / "benchmark.json"
    path.write_text(path.read_text()[:-20])  # truncated: no longer parses
    again = run_demo(DemoOptions(workdir=str(workdir), quick=True, echo=lambda _: None))
    ran = [o.step.name for o in again.outcomes if o.status == "ran"]
    assert ran == ["benchmark", "report"]
    assert _json(path)["onnxruntime"]

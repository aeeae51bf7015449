"""``qat export --data_type int8 --target onnxruntime``: the ONNX Runtime CPU INT8 model written
next to the TensorRT outputs from the same scales (PTQ: the calibrated ranges; QAT: the learned
ranges, the tensors QAT lacks calibrated on images), its integer kernels, its accuracy, errors."""

import numpy as np
import onnx
import pytest
from export_cli_helpers import IMAGE_DIR, ort_outputs, run_cli, staging_leftovers
from onnx import numpy_helper

from tao_qat.export.calibration_cache import read_calibration_cache
from tao_qat.export.cpu_int8 import activation_grid, uncovered_activation_tensors
from tao_qat.export.cpu_int8_fold import fold_batchnorm
from tao_qat.export.cpu_int8_runtime import count_kernels
from tao_qat.export.onnx_names import build_name_map
from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate
from tao_qat.quantization import extract_quantization

CALIBRATION = ("--cal_image_dir", IMAGE_DIR, "--batches", 2, "--batch_size", 2)
CPU = ("--data_type", "int8", "--target", "onnxruntime")


def _export(model, folder, *extra):
    code, out, err = run_cli("export", "-m", model, "-o", folder / "model.onnx", *CPU, *extra)
    assert code == 0, err
    return folder, out


@pytest.fixture(scope="module")
def ptq_cpu(models, tmp_path_factory):
    """PTQ of the float model on the 4 photos (2 x 2), with the CPU INT8 model."""
    return _export(models["float"], tmp_path_factory.mktemp("ptq_cpu"), *CALIBRATION)


@pytest.fixture(scope="module")
def qat_cpu(models, tmp_path_factory):
    """QAT model: learned ranges; the photos calibrate only what the CPU graph needs more."""
    return _export(models["qat"], tmp_path_factory.mktemp("qat_cpu"), *CALIBRATION)


def activation_scales(model):
    """{tensor a QuantizeLinear reads: (scale, zero point)} of a CPU INT8 model; a fused ReLU's
    Q reads the conv / Add output before it."""
    inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    return {
        node.input[0]: (float(inits[node.input[1]]), int(inits[node.input[2]]))
        for node in model.graph.node
        if node.op_type == "QuantizeLinear"
    }


def relu_sources(float_model):
    """{ReLU output: the tensor it rectifies} of the float graph."""
    return {n.output[0]: n.input[0] for n in float_model.graph.node if n.op_type == "Relu"}


def assert_close_to_fp32(folder, images):
    # Measured (PTQ / QAT): cov max |diff| 0.0039 / 0.0037, bbox max |diff| 2.2 % / 2.2 % of
    # its largest value (the TensorRT Q/DQ model: 0.0026 / 0.0024, 1.4 % / 1.6 %). Bounds as in
    # tests/cpu_int8: 0.015 and 6 %.
    cov, bbox = ort_outputs(folder / "model.cpu_int8.onnx", images)
    want_cov, want_bbox = ort_outputs(folder / "model.onnx", images)
    assert np.abs(cov - want_cov).max() < 0.015
    assert np.abs(bbox - want_bbox).max() < 0.06 * np.abs(want_bbox).max()
    assert np.abs(bbox - want_bbox).max() > 0  # really quantized


def test_ptq_writes_the_cpu_model_beside_the_tensorrt_outputs(ptq_cpu):
    folder, out = ptq_cpu
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.cal.bin",
        "model.cpu_int8.onnx",
        "model.onnx",
        "model.qdq.onnx",
    ]
    # ResNet-10: conv1 + 2 convs per block + 4 projection shortcuts = 13 integer convs, the two
    # heads float; the 4 residual Adds integer.
    line = f"ONNX Runtime CPU INT8 model (13 of 15 convs as QLinearConv, 4 QLinearAdd): {folder}"
    assert line in out
    kernels = count_kernels(str(folder / "model.cpu_int8.onnx"))
    assert (kernels.integer_convs, kernels.float_convs, kernels.ops["QLinearAdd"]) == (13, 2, 4)
    # Same interface as the float export: OnnxPredictor / qat evaluate read either.
    cpu, fp32 = onnx.load(folder / "model.cpu_int8.onnx"), onnx.load(folder / "model.onnx")
    assert [i.name for i in cpu.graph.input] == [i.name for i in fp32.graph.input] == ["input_1"]
    assert [o.name for o in cpu.graph.output] == [o.name for o in fp32.graph.output]
    for mine, theirs in zip(cpu.graph.output, fp32.graph.output, strict=True):
        assert mine.type == theirs.type  # float32 [N, C, H/16, W/16]
    assert staging_leftovers(folder) == []


def test_ptq_cpu_scales_are_the_calibrated_ranges(ptq_cpu):
    folder, _ = ptq_cpu
    _, cache = read_calibration_cache(folder / "model.cal.bin")  # every float tensor's amax
    cpu = onnx.load(folder / "model.cpu_int8.onnx")
    scales = activation_scales(cpu)
    relus = {v: k for k, v in relu_sources(onnx.load(folder / "model.onnx")).items()}
    assert len(scales) == 18  # input + activation_1 + 4 per block (cpu_int8 graph tests)
    for tensor, (scale, zero_point) in scales.items():
        relu = relus.get(tensor)  # a fused ReLU: its own amax, 255 levels on [0, amax]
        amax = cache[relu] if relu else cache[tensor]
        nonnegative = relu is not None or tensor == "input_1"
        want_scale, want_zero = activation_grid(amax, nonnegative=nonnegative)
        # The cache stores float32(amax / 127) in hex; amax comes back within 1 ulp.
        assert scale == pytest.approx(float(want_scale), rel=1e-6), tensor
        assert zero_point == want_zero, tensor


def test_ptq_cpu_outputs_close_to_fp32(ptq_cpu, images):
    assert_close_to_fp32(ptq_cpu[0], images)


@pytest.fixture(scope="module")
def peeled(models):
    """(float model, activation_amax, weight_amax) of the QAT test model."""
    return extract_quantization(models["qat_model"])


def test_qat_cpu_model_uses_exactly_the_qat_ranges(qat_cpu, peeled):
    folder, out = qat_cpu
    _, activation_amax, weight_amax = peeled
    fp32 = onnx.load(folder / "model.onnx")
    names = build_name_map(fp32)
    qat_tensors = {names.tensor(layer): amax for layer, amax in activation_amax.items()}
    # The cache stays the 13 QAT ranges; the CPU graph also needs the 4 main-branch BN
    # outputs (TensorRT fuses them into the Add) and block_4a_relu (it only feeds the float
    # heads): these 5 alone are calibrated on the photos.
    _, cache = read_calibration_cache(folder / "model.cal.bin")
    assert set(cache) == set(qat_tensors) and len(cache) == 13
    calibrated = uncovered_activation_tensors(fp32, qat_tensors)
    assert len(calibrated) == 5 and "block_4a_relu/Relu:0" in calibrated
    assert f"5 tensors calibrated on images in {IMAGE_DIR}" in out
    assert "13 of 15 convs as QLinearConv, 4 QLinearAdd" in out
    cpu = onnx.load(folder / "model.cpu_int8.onnx")
    scales = activation_scales(cpu)
    relus = {v: k for k, v in relu_sources(fp32).items()}
    covered = 0
    for tensor, (scale, zero_point) in scales.items():
        key = relus.get(tensor, tensor)
        if key not in qat_tensors:
            assert key in calibrated, key
            continue
        nonnegative = key in relus.values() or key == "input_1"
        want_scale, want_zero = activation_grid(qat_tensors[key], nonnegative=nonnegative)
        assert scale == float(want_scale), key  # bit for bit: float32(amax / 255 or / 127)
        assert zero_point == want_zero, key
        covered += 1
    assert covered == 13  # every QAT range quantizes a tensor of the CPU graph
    # Weights: QAT's per-channel amax times |BN factor| (the grid QAT trained on), / 127.
    inits = {init.name: numpy_helper.to_array(init) for init in cpu.graph.initializer}
    _, convs = fold_batchnorm(fp32)
    for conv in convs.values():
        if conv.layer in weight_amax:
            want = (np.asarray(weight_amax[conv.layer], np.float64) * np.abs(conv.factor)) / 127
            np.testing.assert_allclose(
                inits[f"{conv.layer}/kernel_scale"], want.astype(np.float32), rtol=1e-6
            )


def test_tensorrt_outputs_do_not_depend_on_the_target(qat_cpu, models, tmp_path):
    folder, _ = qat_cpu
    code, _, err = run_cli("export", "-m", models["qat"], "-o", tmp_path / "model.onnx",
                           "--data_type", "int8")  # fmt: skip
    assert code == 0, err
    for name in ("model.onnx", "model.qdq.onnx", "model.cal.bin"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name


def test_qat_cpu_outputs_close_to_fp32(qat_cpu, images):
    assert_close_to_fp32(qat_cpu[0], images)


def test_qat_without_calibration_data_is_one_line(run_qat, models, tmp_path):
    code, out, err = run_qat("export", "-m", models["qat"], "-o", tmp_path / "q.onnx", *CPU)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "qat export: error: --target onnxruntime on a QAT model needs calibration images for "
        "the conv outputs QAT has no range for: give -e/--experiment_spec, --cal_image_dir or "
        "--cal_data_file"
    ]
    assert list(tmp_path.iterdir()) == []


def test_cpu_target_below_opset_13_is_refused(run_qat, models, tmp_path):
    code, _, err = run_qat(
        "export", "-m", models["float"], "-o", tmp_path / "m.onnx", *CPU, *CALIBRATION,
        "--target_opset", 12,
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--target onnxruntime needs --target_opset >= 13 (per-channel weights), got 12" in err
    assert list(tmp_path.iterdir()) == []


def test_existing_cpu_model_is_refused_before_any_work(run_qat, models, tmp_path):
    existing = tmp_path / "m.cpu_int8.onnx"
    existing.write_bytes(b"keep me")
    args = ("export", "-m", models["float"], "-o", tmp_path / "m.onnx", *CPU, *CALIBRATION)
    code, _, err = run_qat(*args)
    assert code == 2
    assert err.strip().splitlines() == [
        f"qat export: error: {existing}: already exists (use --force to overwrite)"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["m.cpu_int8.onnx"]
    assert existing.read_bytes() == b"keep me"


def test_evaluate_runs_the_cpu_int8_model(run_qat, ptq_cpu, project):
    folder, _ = ptq_cpu
    code, out, err = run_qat(
        "evaluate", "-e", project, "-m", folder / "model.cpu_int8.onnx", "-f", "onnx"
    )
    assert code == 0, err
    assert "Mean average precision (in %)" in out

    def evaluate(name):
        options = EvaluateOptions(
            spec_path=str(project),
            model_path=str(folder / name),
            framework="onnx",
            echo=lambda _: None,
        )
        return run_evaluate(options)

    cpu, fp32 = evaluate("model.cpu_int8.onnx"), evaluate("model.onnx")
    assert [c.num_ground_truth for c in cpu.classes] == [c.num_ground_truth for c in fp32.classes]
    # The untrained model's boxes move a little under INT8; measured: the same 56 detections
    # as FP32 pass the thresholds (bound: within 10 %).
    count, want = (sum(c.num_detections for c in r.classes) for r in (cpu, fp32))
    assert want > 0 and abs(count - want) <= 0.1 * want

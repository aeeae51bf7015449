"""``qat export`` of a QAT model: peel-out, cache / JSON / Q/DQ ONNX from the learned ranges
(TAO §6), ``--force_ptq``, and FP32 export of a QAT model."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from export_cli_helpers import (
    IMAGE_DIR,
    graph_tensors,
    keras_outputs,
    ort_outputs,
    run_cli,
)

from tao_qat.common.tensorflow_setup import keras
from tao_qat.export.calibration_cache import (
    DEFAULT_TRT_VERSION,
    amax_to_hex,
    installed_trt_version,
    read_cal_json,
    read_calibration_cache,
    trt_version_header,
)
from tao_qat.export.onnx_names import build_name_map, expose_tensors
from tao_qat.export.qdq import _tensor_base, read_qdq_scales
from tao_qat.quantization import extract_quantization


@pytest.fixture(scope="module")
def peeled(models):
    """(float model, activation_amax, weight_amax) of the QAT test model."""
    return extract_quantization(models["qat_model"])


@pytest.fixture(scope="module")
def qat_export(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("qat_export")
    code, out, err = run_cli(
        "export",
        "-m",
        models["qat"],
        "-o",
        folder / "qat.onnx",
        "--data_type",
        "int8",
        "--cal_json_file",
        folder / "qat.json",
    )
    assert code == 0, err
    return folder, out


def test_cache_holds_exactly_the_qat_ranges(qat_export, peeled):
    folder, out = qat_export
    _, activation_amax, _ = peeled
    assert "13 tensors, QAT ranges" in out and "calibration step" not in out
    onnx_model = onnx.load(folder / "qat.onnx")
    names = build_name_map(onnx_model)
    text = (folder / "qat.cal.bin").read_text().splitlines()
    # Default header: the installed TensorRT, else 8.6.1 (-> TRT-8601-...).
    assert text[0] == trt_version_header(installed_trt_version() or DEFAULT_TRT_VERSION)
    lines = dict(line.rsplit(": ", 1) for line in text[1:])
    # One line per QAT activation quantizer, keyed by the ONNX tensor of that Keras layer,
    # value = hex(float32(amax / 127)) of the learned amax, bit for bit.
    assert list(lines) == [names.tensor(layer) for layer in activation_amax]
    assert set(lines) <= graph_tensors(onnx_model)
    for layer, amax in activation_amax.items():
        assert lines[names.tensor(layer)] == amax_to_hex(amax)
    assert read_cal_json(folder / "qat.json") == {
        names.tensor(layer): amax for layer, amax in activation_amax.items()
    }
    # The ranges come from the photos, not TAO's initial 6.0: input amax = the brightest pixel.
    assert activation_amax["input_1"] == 1.0
    assert all(amax != 6.0 for amax in activation_amax.values())


def test_qdq_model_reproduces_the_qat_model(qat_export, peeled, models, images):
    folder, _ = qat_export
    float_model, activation_amax, weight_amax = peeled
    qdq = onnx.load(folder / "qat.qdq.onnx")
    names = build_name_map(qdq)
    activations, weights = read_qdq_scales(qdq)
    assert activations == pytest.approx(
        {names.tensor(layer): np.float32(amax / 127) for layer, amax in activation_amax.items()}
    )
    assert set(weights) == {names.conv_kernels[layer] for layer in weight_amax}
    for layer, amax in weight_amax.items():  # per output channel, max |w| / 127
        np.testing.assert_allclose(weights[names.conv_kernels[layer]], amax / 127, rtol=1e-6)
    # ONNX Runtime with Q/DQ quantizes like the QAT model's fake quantization: same scales,
    # round half to even. Each quantized tensor holds the same integers except where TF's and
    # ONNX Runtime's float convolutions (different summation order) put x / s on either side
    # of a rounding edge; such 1-LSB flips then spread downstream. Measured per tensor: 0 flips
    # for input_1 and activation_1, 2 of 65536 at block_1a_relu_1, growing to 1208 of 32768
    # (3.7 %) at block_4a_bn_shortcut; same counts with ONNX Runtime fusions off.
    dq = {
        layer: _tensor_base(names.tensor(layer)) + "_DequantizeLinear:0"
        for layer in activation_amax
    }
    session = ort.InferenceSession(
        expose_tensors(qdq, list(dq.values())).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    onnx_values = session.run(list(dq.values()), {"input_1": images.transpose(0, 3, 1, 2)})
    qat = models["qat_model"]
    probe = keras.Model(qat.input, [qat.get_layer(f"quant_{layer}").output for layer in dq])
    for layer, mine, theirs in zip(dq, onnx_values, probe(images, training=False), strict=True):
        theirs = np.asarray(theirs).transpose(0, 3, 1, 2)
        lsb = np.abs(mine - theirs) / (activation_amax[layer] / 127)
        assert (lsb > 0.5).mean() <= (0 if layer == "input_1" else 0.1), layer
    # At the outputs the Q/DQ model is twice as close to the QAT model as the float model is
    # (RMS; measured cov 4.7e-4 vs 9.6e-4, bbox 2.1e-3 vs 4.0e-3).
    cov, bbox = ort_outputs(folder / "qat.qdq.onnx", images)
    for qdq_out, qat_out, float_out in zip(
        (cov, bbox), keras_outputs(qat, images), keras_outputs(float_model, images), strict=True
    ):
        assert _rms(qdq_out - qat_out) < 0.75 * _rms(float_out - qat_out)


def _rms(values):
    return float(np.sqrt(np.mean(np.square(values))))


def test_float_onnx_of_a_qat_model_is_the_peeled_float_model(qat_export, peeled, images):
    folder, _ = qat_export
    float_model, _, _ = peeled
    onnx_model = onnx.load(folder / "qat.onnx")
    assert not any("Quant" in node.op_type for node in onnx_model.graph.node)
    cov, bbox = ort_outputs(folder / "qat.onnx", images)
    want_cov, want_bbox = keras_outputs(float_model, images)
    np.testing.assert_allclose(cov, want_cov, atol=1e-5)
    np.testing.assert_allclose(bbox, want_bbox, atol=1e-4 * np.abs(want_bbox).max())


def test_force_ptq_calibrates_instead(run_qat, models, qat_export, tmp_path):
    folder, _ = qat_export
    code, out, err = run_qat(
        "export",
        "-m",
        models["qat"],
        "-o",
        tmp_path / "ptq.onnx",
        "--data_type",
        "int8",
        "--force_ptq",
        "--cal_image_dir",
        IMAGE_DIR,
        "--batches",
        1,
        "--batch_size",
        4,
    )
    assert code == 0, err
    assert "calibration step 1/1" in out and "PTQ on images in" in out
    _, qat_cache = read_calibration_cache(folder / "qat.cal.bin")
    _, ptq_cache = read_calibration_cache(tmp_path / "ptq.cal.bin")
    # Every float tensor instead of the 13 quantized ones; new ranges for the shared keys.
    assert set(qat_cache) < set(ptq_cache)
    assert any(ptq_cache[k] != pytest.approx(v, rel=1e-3) for k, v in qat_cache.items())


def test_fp32_export_of_a_qat_model_writes_no_int8_files(run_qat, models, tmp_path, images):
    code, _, err = run_qat("export", "-m", models["qat"], "-o", tmp_path / "f.onnx")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.onnx"]

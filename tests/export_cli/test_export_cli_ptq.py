"""``qat export --data_type int8`` on a float model (PTQ): entropy calibration from an image
folder, a tensor file or the spec; the calibration cache, the tensor scales JSON, the Q/DQ
ONNX, the DeepStream config."""

import numpy as np
import onnx
import pytest
from export_cli_helpers import (
    IMAGE_DIR,
    graph_tensors,
    keras_outputs,
    ort_outputs,
    run_cli,
    staging_leftovers,
)

from tao_qat.export.calibration_cache import (
    amax_to_hex,
    read_cal_json,
    read_calibration_cache,
    trt_version_number,
)
from tao_qat.export.onnx_names import build_name_map
from tao_qat.export.ptq import float_tensors
from tao_qat.export.qdq import read_qdq_scales
from tao_qat.quantization.policy import plan_quantization

HEADS = {"output_cov", "output_bbox"}


@pytest.fixture(scope="module")
def from_images(models, tmp_path_factory):
    """PTQ from the 4 photos (2 batches of 2), cache for TensorRT 8.6.1, JSON, and the images
    saved as a new tensor file (TAO: --cal_data_file is created from --cal_image_dir)."""
    folder = tmp_path_factory.mktemp("ptq_images")
    code, out, err = run_cli(
        "export",
        "-m",
        models["float"],
        "-o",
        folder / "model.onnx",
        "--data_type",
        "int8",
        "--cal_image_dir",
        IMAGE_DIR,
        "--cal_data_file",
        folder / "cal.h5",
        "--batches",
        2,
        "--batch_size",
        2,
        "--cal_json_file",
        folder / "scales.json",
        "--trt_version",
        "8.6.1",
    )
    assert code == 0, err
    return folder, out


def test_outputs_are_announced_and_complete(from_images):
    folder, out = from_images
    assert sorted(p.name for p in folder.iterdir()) == [
        "cal.h5",
        "model.cal.bin",
        "model.onnx",
        "model.qdq.onnx",
        "scales.json",
    ]
    for name in ("model.onnx", "model.qdq.onnx", "model.cal.bin", "scales.json", "cal.h5"):
        assert str(folder / name) in out
    assert "calibration step 2/2 (100%)" in out  # progress over the calibration batches


def test_cache_covers_every_tensor_of_the_graph(from_images):
    folder, _ = from_images
    onnx_model = onnx.load(folder / "model.onnx")
    version, cache = read_calibration_cache(folder / "model.cal.bin")
    assert version == 8601  # TensorRT 8.6.1 -> 8*1000 + 6*100 + 1
    header = (folder / "model.cal.bin").read_text().splitlines()[0]
    assert header == "TRT-8601-EntropyCalibration2"
    # PTQ writes what a TensorRT calibrator writes: every float tensor (input, convs, BNs,
    # ReLUs, Adds, heads), each a tensor of the exported graph.
    assert set(cache) == set(float_tensors(onnx_model))
    assert set(cache) <= graph_tensors(onnx_model)
    assert {"input_1", "output_cov/Sigmoid", "output_bbox/BiasAdd"} <= set(cache)
    # Input pixels are in [0, 1]: the entropy threshold cannot exceed 1.
    assert 0.5 < cache["input_1"] <= 1.0 + 1e-6
    # The JSON holds the raw amax of the same tensors; the cache holds hex(amax / 127).
    scales = read_cal_json(folder / "scales.json")
    assert set(scales) == set(cache)
    lines = dict(
        line.rsplit(": ", 1) for line in (folder / "model.cal.bin").read_text().splitlines()[1:]
    )
    for name, amax in scales.items():
        assert lines[name] == amax_to_hex(amax)
        assert cache[name] == pytest.approx(amax, rel=1e-6)


def test_qdq_model_follows_the_policy(from_images, models):
    folder, _ = from_images
    qdq = onnx.load(folder / "model.qdq.onnx")
    onnx.checker.check_model(qdq, full_check=True)
    names = build_name_map(qdq)
    plan = plan_quantization(models["float_model"].get_config())
    activations, weights = read_qdq_scales(qdq)
    # ResNet-10: 13 activation Q/DQ and 13 quantized kernels (docs/quantization.md); heads float.
    assert set(activations) == {names.tensor(layer) for layer in plan.activation_layers}
    assert len(activations) == len(weights) == 13
    assert not {names.conv_kernels[head] for head in HEADS} & set(weights)
    outputs = {o.name for o in qdq.graph.output}
    assert all(
        out not in outputs for n in qdq.graph.node if "Quant" in n.op_type for out in n.output
    )
    zero_points = [init for init in qdq.graph.initializer if init.name.endswith("_zero_point")]
    assert zero_points and all(
        z.data_type == onnx.TensorProto.INT8 and not onnx.numpy_helper.to_array(z).any()
        for z in zero_points
    )
    # Activation scale = float32(cache amax / 127); weight scale = max |w| / 127 per channel.
    _, cache = read_calibration_cache(folder / "model.cal.bin")
    for tensor, scale in activations.items():
        assert scale == pytest.approx(cache[tensor] / 127, rel=1e-6)
    kernel = models["float_model"].get_layer("block_2a_conv_1").kernel.numpy()  # HWIO
    scale = weights[names.conv_kernels["block_2a_conv_1"]]
    assert scale.shape == (128,)
    np.testing.assert_allclose(scale, np.abs(kernel).max(axis=(0, 1, 2)) / 127, rtol=1e-6)


def test_qdq_model_runs_close_to_fp32(from_images, models, images):
    folder, _ = from_images
    cov, bbox = ort_outputs(folder / "model.qdq.onnx", images)
    want_cov, want_bbox = keras_outputs(models["float_model"], images)
    cov_error = float(np.abs(cov - want_cov).max())
    bbox_error = float(np.linalg.norm(bbox - want_bbox) / np.linalg.norm(want_bbox))
    # Measured: cov max |diff| 0.0033 (cov in [0.38, 0.52]), bbox relative L2 error 0.016.
    assert cov_error < 0.01 and bbox_error < 0.05
    assert cov_error > 0  # the Q/DQ pairs do quantize


def test_tensor_file_calibration_gives_the_same_cache(from_images, models, tmp_path):
    folder, _ = from_images
    # The tensor file written by the first export holds the same 4 preprocessed images. One
    # batch of 4, re-cut to the static batch size 2, feeds the same 2 + 2 images in the same
    # order as the first export: same histograms (the first batch sets the bin width), so the
    # same amax for every tensor.
    code, out, err = run_cli(
        "export",
        "-m",
        models["float"],
        "-o",
        tmp_path / "m.onnx",
        "--data_type",
        "int8",
        "--cal_data_file",
        folder / "cal.h5",
        "--batches",
        1,
        "--batch_size",
        4,
        "--static_batch_size",
        2,
        "--trt_version",
        "8.6.1",
    )
    assert code == 0, err
    assert f"tensor file {folder / 'cal.h5'}" in out
    _, first = read_calibration_cache(folder / "model.cal.bin")
    _, second = read_calibration_cache(tmp_path / "m.cal.bin")
    assert second.keys() == first.keys()
    for name, amax in first.items():
        assert second[name] == pytest.approx(amax, rel=1e-6, abs=1e-12), name


def test_spec_calibration_and_deepstream_config(run_qat, project, models, tmp_path):
    code, out, err = run_qat(
        "export",
        "-m",
        models["float"],
        "-o",
        tmp_path / "ds" / "model.onnx",
        "-e",
        project,
        "--data_type",
        "int8",
        "--batches",
        1,
        "--batch_size",
        4,
        "--gen_ds_config",
        "--max_batch_size",
        8,
        "--trt_version",
        "10.3.0",
    )
    assert code == 0, err
    folder = tmp_path / "ds"
    assert f"training data of {project}" in out
    header = (folder / "model.cal.bin").read_text().splitlines()[0]
    assert (
        header
        == f"TRT-{trt_version_number('10.3.0')}-EntropyCalibration2"
        == ("TRT-100300-EntropyCalibration2")
    )
    config = dict(
        line.split("=", 1)
        for line in (folder / "nvinfer_config.txt").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert config["onnx-file"] == "model.onnx" and config["int8-calib-file"] == "model.cal.bin"
    assert config["network-mode"] == "1" and config["batch-size"] == "8"
    assert config["infer-dims"] == "3;64;64" and config["num-detected-classes"] == "2"
    assert config["cluster-mode"] == "2"  # the synthetic spec clusters with NMS
    assert (folder / "labels.txt").read_text() == "car\nperson\n"
    assert staging_leftovers(folder) == []


def test_tensorrt_11_deepstream_config_uses_the_qdq_model(run_qat, models, tmp_path, project):
    code, _, err = run_qat(
        "export",
        "-m",
        models["float"],
        "-o",
        tmp_path / "model.onnx",
        "-e",
        project,
        "--data_type",
        "int8",
        "--cal_image_dir",
        IMAGE_DIR,
        "--batches",
        1,
        "--batch_size",
        4,
        "--gen_ds_config",
        "--trt_version",
        "11.4.0",
    )
    assert code == 0, err
    text = (tmp_path / "nvinfer_config.txt").read_text()
    # TensorRT 11 has no implicit quantization: the Q/DQ model, no calibration cache.
    assert "onnx-file=model.qdq.onnx\n" in text and "int8-calib-file" not in text
    assert (tmp_path / "model.cal.bin").read_text().startswith("TRT-110400-EntropyCalibration2\n")

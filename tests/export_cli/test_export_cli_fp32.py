"""``qat export`` FP32 / FP16: the ONNX layout, outputs equal to Keras, output names and
defaults, encryption with -k, refusing to overwrite."""

import json

import numpy as np
import onnx
import pytest
from conftest import KEY
from export_cli_helpers import keras_outputs, load_onnx, ort_outputs, staging_leftovers

from tao_qat.common.crypto import is_encrypted


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_fp32_export_matches_keras(run_qat, models, images, tmp_path):
    # -o without suffix: ".onnx" is appended (TAO).
    code, out, err = run_qat("export", "-m", models["float"], "-o", tmp_path / "detector")
    assert code == 0, err
    path = tmp_path / "detector.onnx"
    assert f"ONNX model (dynamic batch, opset 13): {path}" in out
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    # NCHW like TAO: input_1 [N, 3, 64, 64]; heads [N, 2, 4, 4] and [N, 8, 4, 4] (64 / 16 = 4).
    assert [(i.name, _dims(i)) for i in model.graph.input] == [("input_1", ["N", 3, 64, 64])]
    assert [(o.name, _dims(o)) for o in model.graph.output] == [
        ("output_cov/Sigmoid", ["N", 2, 4, 4]),
        ("output_bbox/BiasAdd", ["N", 8, 4, 4]),
    ]
    cov, bbox = ort_outputs(path, images)
    want_cov, want_bbox = keras_outputs(models["float_model"], images)
    np.testing.assert_allclose(cov, want_cov, atol=1e-4 * np.abs(want_cov).max())
    np.testing.assert_allclose(bbox, want_bbox, atol=1e-4 * np.abs(want_bbox).max())
    # FP32: no INT8 outputs, nothing staged left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.onnx"]


def test_fp16_default_output_in_results_dir_with_static_batch(run_qat, models, tmp_path):
    results = tmp_path / "results"
    code, out, err = run_qat(
        "export",
        "-m",
        models["float"],
        "--data_type",
        "fp16",
        "--static_batch_size",
        "2",
        "--results_dir",
        results,
    )
    assert code == 0, err
    # Default -o: <results_dir>/<model stem>.onnx; fp16 is the engine precision: ONNX stays FP32.
    path = results / "float.onnx"
    assert "ONNX model (batch 2, opset 13)" in out
    model = onnx.load(path)
    assert _dims(model.graph.input[0]) == [2, 3, 64, 64]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert sorted(p.name for p in results.iterdir()) == ["float.onnx", "status.json"]
    status = json.loads((results / "status.json").read_text().splitlines()[-1])
    assert status["status"] == "SUCCESS" and status["kpi"]["data_type"] == "fp16"


def test_refuses_to_overwrite_then_force(run_qat, models, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"keep me")
    code, out, err = run_qat("export", "-m", models["float"], "-o", path)
    assert code == 2 and out == ""
    assert err.strip() == f"qat export: error: {path}: already exists (use --force to overwrite)"
    assert path.read_bytes() == b"keep me"
    code, _, err = run_qat("export", "-m", models["float"], "-o", path, "--force")
    assert code == 0, err
    onnx.checker.check_model(onnx.load(path))
    assert staging_leftovers(tmp_path) == []


def test_every_output_is_checked_before_any_work(run_qat, models, tmp_path, images):
    # The cache exists: int8 refuses before the ONNX is written (nothing new in the folder).
    cache = tmp_path / "model.cal.bin"
    cache.write_text("old")
    code, _, err = run_qat(
        "export",
        "-m",
        models["float"],
        "-o",
        tmp_path / "model.onnx",
        "--data_type",
        "int8",
        "--cal_image_dir",
        tmp_path,
    )
    assert code == 2 and f"{cache}: already exists" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cal.bin"]


def test_key_reads_encrypted_model_and_encrypts_the_onnx(run_qat, models, images, tmp_path):
    path = tmp_path / "secret.onnx"
    code, _, err = run_qat("export", "-m", models["encrypted"], "-k", KEY, "-o", path)
    assert code == 0, err
    assert is_encrypted(path)
    cov, _ = ort_outputs(load_onnx(path, KEY), images)
    want_cov, _ = keras_outputs(models["float_model"], images)
    np.testing.assert_allclose(cov, want_cov, atol=1e-5)
    # Without the key: one line, exit 2, nothing written.
    code, _, err = run_qat("export", "-m", models["encrypted"], "-o", tmp_path / "other.onnx")
    assert code == 2 and err.strip().endswith("is encrypted; give -k/--key")
    assert not (tmp_path / "other.onnx").exists()


@pytest.mark.parametrize("suffix", [".onnx", ".etlt"])
def test_output_name_rules(suffix, tmp_path):
    from tao_qat.export.run_export import ExportOptions, onnx_output_path

    options = ExportOptions(model_path="/m/model.hdf5", output_path=str(tmp_path / f"x{suffix}"))
    want = "x.onnx" if suffix == ".onnx" else "x.etlt.onnx"  # TAO appends rather than replaces
    assert onnx_output_path(options).name == want
    assert onnx_output_path(ExportOptions(model_path="/m/model.hdf5")).as_posix() == (
        "/m/model.onnx"
    )

"""``qat export`` flag errors: contradictory or missing flags give one line and a non-zero exit
before any work; a failure after the ONNX was converted leaves no file under a final name."""

import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from export_cli_helpers import IMAGE_DIR, staging_leftovers

from tao_qat.common.optional import tensorrt_missing_reason
from tao_qat.export.tensorfile import write_tensorfile

FLOAT_CASES = {
    "int8_without_calibration_data": (
        ("--data_type", "int8"),
        2,
        "--data_type int8 on a float (non-QAT) model needs calibration images: give "
        "-e/--experiment_spec, --cal_image_dir or --cal_data_file",
    ),
    "ds_config_without_spec": (
        ("--gen_ds_config",),
        2,
        "--gen_ds_config needs -e/--experiment_spec",
    ),
    "missing_tensor_file": (
        ("--data_type", "int8", "--cal_data_file", "nowhere.h5"),
        1,
        "--cal_data_file nowhere.h5: file not found (give --cal_image_dir to create it)",
    ),
    "static_batch_zero": (("--static_batch_size", "0"), 2, "--static_batch_size 0"),
    "no_batches": (
        ("--data_type", "int8", "--cal_image_dir", IMAGE_DIR, "--batches", "0"),
        2,
        "--batches 0: must be >= 1",
    ),
    "opset_10": (("--target_opset", "10"), 2, "--target_opset 10: must be >= 11"),
    "bad_trt_version": (
        ("--data_type", "int8", "--cal_image_dir", IMAGE_DIR, "--trt_version", "ten"),
        2,
        "TensorRT version 'ten': expected MAJOR.MINOR[.PATCH]",
    ),
    "same_name_twice": (
        ("--data_type", "int8", "--cal_image_dir", IMAGE_DIR, "--cal_cache_file", "out.onnx"),
        2,
        "named for two different outputs",
    ),
}


@pytest.mark.parametrize("case", sorted(FLOAT_CASES))
def test_flag_errors_are_one_line_and_write_nothing(case, run_qat, models, tmp_path, monkeypatch):
    extra, want_code, message = FLOAT_CASES[case]
    monkeypatch.chdir(tmp_path)  # relative names land in tmp_path
    code, out, err = run_qat("export", "-m", models["float"], "-o", "out.onnx", *extra)
    assert code == want_code
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_force_ptq_without_data(run_qat, models, tmp_path):
    code, _, err = run_qat(
        "export",
        "-m",
        models["qat"],
        "-o",
        tmp_path / "q.onnx",
        "--data_type",
        "int8",
        "--force_ptq",
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--force_ptq needs calibration images: give -e/--experiment_spec" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(tensorrt_missing_reason() is None, reason="TensorRT is installed here")
def test_engine_file_without_tensorrt(run_qat, models, tmp_path):
    code, out, err = run_qat(
        "export",
        "-m",
        models["float"],
        "-o",
        tmp_path / "m.onnx",
        "--engine_file",
        tmp_path / "m.engine",
    )
    assert code == 1 and out == ""
    assert err.strip() == (
        f"qat export: error: --engine_file: {tensorrt_missing_reason()}; export without it and "
        "build the engine on the target (qat convert)"
    )
    assert list(tmp_path.iterdir()) == []


def test_failure_after_conversion_leaves_nothing_and_rerun_succeeds(run_qat, models, tmp_path):
    # A tensor file of 32x32 images: the error comes during calibration, after the ONNX model
    # was converted and staged. No output appears under its final name, no staging folder
    # stays, and the same command with usable data then succeeds without --force.
    small = tmp_path / "small.h5"
    write_tensorfile(small, [np.zeros((2, 32, 32, 3), np.float32)])
    out_dir = tmp_path / "out"
    args = [
        "export",
        "-m",
        models["float"],
        "-o",
        out_dir / "m.onnx",
        "--data_type",
        "int8",
        "--cal_json_file",
        out_dir / "m.json",
        "--cal_data_file",
    ]
    code, _, err = run_qat(*args, small)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{small}: tensor file images are [3, 32, 32] (C, H, W) but the model takes" in err
    assert list(out_dir.iterdir()) == []
    code, _, err = run_qat(*args, tmp_path / "new.h5", "--cal_image_dir", IMAGE_DIR)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "m.cal.bin",
        "m.json",
        "m.onnx",
        "m.qdq.onnx",
    ]
    assert (tmp_path / "new.h5").is_file()


@pytest.mark.slow
def test_killed_export_leaves_no_final_file(models, tmp_path):
    # SIGKILL while the outputs are being staged (no cleanup code runs), then run again.
    out_dir = tmp_path / "out"
    script = (
        "import sys\n"
        "from tao_qat.cli import main\n"
        "main.COMMANDS.setdefault('export', 'tao_qat.cli.export:export')\n"
        "sys.exit(main.main(sys.argv[1:]))\n"
    )
    args = [
        "export",
        "-m",
        str(models["float"]),
        "-o",
        str(out_dir / "m.onnx"),
        "--data_type",
        "int8",
        "--cal_image_dir",
        str(IMAGE_DIR),
        "--batches",
        "2",
        "--batch_size",
        "2",
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out_dir.glob(".qat_export_*/m.onnx")):  # the float ONNX is staged
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not [p for p in out_dir.iterdir() if not p.name.startswith(".qat_export_")]
    rerun = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr
    onnx.checker.check_model(onnx.load(out_dir / "m.qdq.onnx"))
    assert len(staging_leftovers(out_dir)) == 1  # only the killed run's hidden folder

"""``qat prune`` end to end: exit codes, table, JSON, status.json, refusals."""

import json

import numpy as np
import pytest

from tao_qat.cli.prune import expand_list_option
from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.modeling.model_io import load_model_file, save_model

pytestmark = pytest.mark.usefixtures("prune_command")


def test_expand_list_option_accepts_tao_space_separated_lists():
    assert expand_list_option(["-el", "a", "b", "-o", "x"]) == ["-el", "a", "-el", "b", "-o", "x"]
    assert expand_list_option(["-m", "m", "--excluded_layers", "a"]) == [
        "-m",
        "m",
        "--excluded_layers",
        "a",
    ]
    assert expand_list_option(["-el", "-v"]) == ["-v"]  # empty list, as argparse nargs='*'
    assert expand_list_option(["-el", "a", "-el", "b"]) == ["-el", "a", "-el", "b"]


def test_prune_prints_table_and_writes_model_and_json(run_qat, resnet10_file, tmp_path):
    code, out, err = run_qat(
        "prune",
        "-m",
        resnet10_file,
        "-o",
        tmp_path / "pruned",
        "-pth",
        "0.5",
        "-el",
        "block_1a_conv_1",
        "block_2a_conv_1",
        "-nf",
        "8",
        "-pg",
        "8",
        "--results_dir",
        tmp_path / "results",
    )
    assert code == 0, err
    model_path, json_path = tmp_path / "pruned.hdf5", tmp_path / "pruned.pruning.json"
    assert f"Wrote {model_path} and {json_path}" in out
    report = json.loads(json_path.read_text())
    assert report["settings"]["excluded_layers"] == ["block_1a_conv_1", "block_2a_conv_1"]
    rows = {row["name"]: row for row in report["layers"]}
    assert (rows["block_1a_conv_1"]["before"], rows["block_1a_conv_1"]["after"]) == (64, 64)
    assert rows["block_1a_conv_1"]["note"] == "kept: 'block_1a_conv_1' is excluded"
    assert rows["block_2a_conv_1"]["after"] == 128
    assert rows["output_bbox"]["after"] == 8
    assert any(row["after"] < row["before"] for row in report["layers"])
    for row in report["layers"]:
        assert row["after"] == row["before"] or row["after"] % 8 == 0
    assert report["groups"][0] == ["block_1a_conv_2", "block_1a_conv_shortcut"]
    # The file really is the smaller model the report describes.
    pruned = load_model_file(model_path)
    assert report["parameters"]["after"] == pruned.count_params()
    assert pruned.get_layer("conv1").filters == rows["conv1"]["after"]
    params = report["parameters"]
    assert report["pruning_ratio"] == pytest.approx(params["after"] / params["before"])
    assert report["flops"]["after"] < report["flops"]["before"]
    # The table: one line per prunable layer "name  before  ->  after  group  note".
    line = next(line for line in out.splitlines() if line.startswith("block_1a_conv_2 "))
    assert line.split()[:5] == [
        "block_1a_conv_2",
        "64",
        "->",
        str(rows["block_1a_conv_2"]["after"]),
        "g1",
    ]
    assert f"Pruning ratio (pruned model / original model): {report['pruning_ratio']:.4f}" in out
    status = json.loads((tmp_path / "results" / "status.json").read_text().splitlines()[-1])
    assert status["status"] == "SUCCESS"
    assert status["kpi"]["param_count"] == params["after"]


def test_prune_refuses_to_overwrite_without_force(run_qat, resnet10_file, tmp_path):
    args = ("prune", "-m", resnet10_file, "-o", tmp_path / "p.hdf5", "-pth", "0.3")
    assert run_qat(*args)[0] == 0
    before = (tmp_path / "p.hdf5").stat().st_mtime_ns
    code, _, err = run_qat(*args)
    assert code == 2
    assert "p.hdf5: already exists (use --force to overwrite)" in err
    assert (tmp_path / "p.hdf5").stat().st_mtime_ns == before
    (tmp_path / "p.hdf5").unlink()  # the JSON report alone also blocks
    code, _, err = run_qat(*args)
    assert code == 2 and "p.pruning.json: already exists" in err
    assert not (tmp_path / "p.hdf5").exists()
    assert run_qat(*args, "--force")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.hdf5", "p.pruning.json"]


def test_prune_refuses_an_unknown_layer_type_naming_it(run_qat, tmp_path):
    inputs = keras.Input((16, 16, 3), name="input_1")
    a = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(8, 3, padding="same", name="b")(inputs)
    joined = keras.layers.Concatenate(name="joined")([a, b])
    head = keras.layers.Conv2D(2, 1, name="head")(joined)
    source = save_model(keras.Model(inputs, head), tmp_path / "concat.hdf5")
    code, out, err = run_qat("prune", "-m", source, "-o", tmp_path / "out.hdf5")
    assert code == 1
    assert f"{source}: layer 'joined' has type Concatenate, which pruning does not support" in err
    assert not (tmp_path / "out.hdf5").exists()


def test_prune_usage_errors(run_qat, resnet10_file, tmp_path):
    code, _, err = run_qat("prune", "-m", resnet10_file, "-o", tmp_path / "o", "-el", "nope")
    assert code == 2 and "-el/--excluded_layers: no layer named 'nope'" in err
    code, _, err = run_qat("prune", "-m", resnet10_file, "-o", tmp_path / "o", "-n", "L1")
    assert code == 2 and "-n" in err
    code, _, err = run_qat("prune", "-m", tmp_path / "missing.hdf5", "-o", tmp_path / "o")
    assert code == 2 and "missing.hdf5" in err
    assert not any(tmp_path.iterdir())


def test_key_encrypts_the_pruned_model(run_qat, resnet10_file, tmp_path):
    code, _, err = run_qat(
        "prune", "-m", resnet10_file, "-o", tmp_path / "enc.hdf5", "-k", "secret", "-pth", "0.5"
    )
    assert code == 0, err
    with pytest.raises(UsageError):
        load_model_file(tmp_path / "enc.hdf5")  # encrypted: needs the key
    pruned = load_model_file(tmp_path / "enc.hdf5", key="secret")
    report = json.loads((tmp_path / "enc.pruning.json").read_text())
    assert pruned.count_params() == report["parameters"]["after"]


def test_threshold_zero_cli_keeps_the_model(run_qat, resnet10_file, tmp_path):
    code, out, err = run_qat("prune", "-m", resnet10_file, "-o", tmp_path / "same", "-pth", "0")
    assert code == 0, err
    assert "Pruning ratio (pruned model / original model): 1.0000" in out
    original, same = load_model_file(resnet10_file), load_model_file(tmp_path / "same.hdf5")
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    for got, want in zip(same(x), original(x), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)

"""``qat dataset_convert`` through the CLI: exit codes, one-line errors, echoed outputs."""

from convert_helpers import write_kitti_spec


def test_cli_converts_and_echoes_outputs(tmp_path, synthetic_kitti, run_qat):
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", val_split=20, num_shards=1)
    prefix = tmp_path / "out" / "kitti"
    code, out, err = run_qat("dataset_convert", "-d", spec, "-o", prefix, "-r", tmp_path / "res")
    assert code == 0, err
    assert f"wrote {prefix}-fold-000-of-002-shard-00000-of-00001 (2 records)" in out
    assert f"wrote {prefix}-fold-001-of-002-shard-00000-of-00001 (8 records)" in out
    assert "Objects written per partition:" in out and "fold 0" in out and "fold 1" in out
    assert "Class map" in out
    assert (tmp_path / "res" / "status.json").is_file()

    # Second run: refused, exit code 2, one line naming the file and the flag to use.
    code, out, err = run_qat("dataset_convert", "-d", spec, "-o", prefix)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("qat ")]
    assert lines == [
        f"qat dataset_convert: error: {prefix}-fold-000-of-002-shard-00000-of-00001: "
        "already exists (use --force to overwrite)"
    ]
    code, out, err = run_qat("dataset_convert", "-d", spec, "-o", prefix, "--force")
    assert code == 0, err


def test_cli_bad_label_one_line(tmp_path, synthetic_kitti, run_qat):
    root, _ = synthetic_kitti
    (root / "label_2" / "000000.txt").write_text("car 0 0 0 1 2 3 x 0 0 0 0 0 0 0\n")
    spec = write_kitti_spec(tmp_path / "spec.txt", "data")
    code, out, err = run_qat("dataset_convert", "-d", spec, "-o", tmp_path / "o")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"qat dataset_convert: error: {root / 'label_2' / '000000.txt'}:1: "
        "field 8 (bbox bottom) is not a number: 'x'"
    )


def test_cli_missing_spec_and_bad_spec(tmp_path, run_qat):
    code, _, err = run_qat("dataset_convert", "-d", tmp_path / "nope.txt", "-o", tmp_path / "o")
    assert code == 1
    assert err.strip().endswith(f"{tmp_path / 'nope.txt'}: spec file not found")
    bad = tmp_path / "bad.txt"
    bad.write_text("kitti_config {\n  root_directory: 'x'\n}\n")
    code, _, err = run_qat("dataset_convert", "-d", bad, "-o", tmp_path / "o")
    assert code == 1
    assert f"{bad}:2:" in err and "root_directory" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_usage_errors(tmp_path, run_qat):
    code, _, err = run_qat("dataset_convert", "-d", tmp_path / "spec.txt")
    assert code == 2 and "Missing option '-o'" in err
    code, _, err = run_qat("dataset_convert", "-d", "s", "-o", "o", "-f", "-1")
    assert code == 2 and "-f" in err

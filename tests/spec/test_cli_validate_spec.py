"""``qat validate_spec``: summary on valid specs, every error on invalid ones, exit codes."""

from spec_testing import (
    COCO_EXPORT_SPEC,
    DEFAULT_SPEC,
    INFERENCE_SPEC,
    KITTI_EXPORT_SPEC,
    QAT_SPEC,
    edit,
)


def test_experiment_summary(run_qat):
    code, out, err = run_qat("validate_spec", "-e", QAT_SPEC)
    assert code == 0, err
    assert f"{QAT_SPEC}: valid experiment spec" in out
    assert "classes:    car, cyclist, pedestrian" in out
    assert "input:      1248x384x3 (WxHxC)" in out
    assert "model:      resnet18 (load_graph)" in out
    assert "training:   120 epochs, batch size 4, QAT" in out
    assert "data:       1 source(s), validation fold 0" in out
    assert err == ""


def test_dataset_export_and_inference_summaries(run_qat):
    code, out, _ = run_qat("validate_spec", "-e", KITTI_EXPORT_SPEC)
    assert code == 0
    assert "valid dataset_export spec" in out
    assert "source:     KITTI" in out
    assert "partitions: 2 (random, val_split 14%), 10 shard(s) each" in out
    code, out, _ = run_qat("validate_spec", "-e", COCO_EXPORT_SPEC)
    assert code == 0 and "shards:     4, 16" in out
    code, out, _ = run_qat("validate_spec", "--experiment_spec", INFERENCE_SPEC)
    assert code == 0
    assert "valid inference spec" in out
    assert "classes:    car, pedestrian" in out
    assert "model:      results/weights/model.hdf5" in out


def test_explicit_kind(run_qat):
    code, out, _ = run_qat("validate_spec", "-e", DEFAULT_SPEC, "--kind", "experiment")
    assert code == 0 and "valid experiment spec" in out
    code, _, err = run_qat("validate_spec", "-e", DEFAULT_SPEC, "--kind", "inference")
    assert code == 1
    assert 'has no field named "random_seed"' in err


def test_invalid_spec_lists_every_error(run_qat, tmp_path):
    text = edit(DEFAULT_SPEC.read_text(), "soft_start: 0.1", "soft_start: 0.9")
    text = edit(text, "dbscan_eps: 0.13", "dbscan_eps: 1.5")
    path = tmp_path / "spec.txt"
    path.write_text(text)
    code, out, err = run_qat("validate_spec", "-e", path)
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f'{path}: postprocessing_config.target_class_config["car"].clustering_config.dbscan_eps:'
        " must be in [0, 1] (1.5)",
        f"{path}: training_config.learning_rate.soft_start_annealing_schedule.soft_start: must "
        "be <= annealing (0.9 > 0.7)",
        f"qat validate_spec: error: {path}: invalid experiment spec (2 errors)",
    ]
    assert "Traceback" not in err


def test_syntax_error_is_one_line(run_qat, tmp_path):
    path = tmp_path / "spec.txt"
    path.write_text("random_seed: 1\nmodel_config {\n  arhc: 'resnet'\n}\n")
    code, out, err = run_qat("validate_spec", "-e", path)
    assert code == 1
    assert err.splitlines() == [
        f'qat validate_spec: error: {path}:3:3: Message type "ModelConfig" has no field named '
        '"arhc" (did you mean "arch"?)'
    ]


def test_missing_file_and_missing_flag(run_qat, tmp_path):
    code, _, err = run_qat("validate_spec", "-e", tmp_path / "nope.txt")
    assert code == 1
    assert err.strip() == f"qat validate_spec: error: {tmp_path / 'nope.txt'}: spec file not found"
    code, _, err = run_qat("validate_spec")
    assert code == 2
    assert "Missing option '-e'" in err

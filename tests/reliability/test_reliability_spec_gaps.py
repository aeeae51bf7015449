"""Gaps the spec fuzzer found (values that parsed and validated but failed later), now closed:
validate_spec rejects them with the field path (tao_qat.spec.value_rules, experiment_rules)."""

import pytest

SPECS = {
    "default": "tests/data/specs/default_spec.txt",
    "qat": "tests/data/specs/detectnet_v2_retrain_resnet18_kitti_qat.txt",
}


def _validate_edited(run_qat, repo_root, tmp_path, spec, old, new):
    text = (repo_root / SPECS[spec]).read_text()
    assert old in text
    path = tmp_path / "spec.txt"
    path.write_text(text.replace(old, new, 1))
    return path, run_qat("validate_spec", "-e", path)


@pytest.mark.parametrize(
    ("spec", "old", "new", "field_path"),
    [
        pytest.param(
            "qat",
            "clustering_algorithm: DBSCAN",
            "clustering_algorithm: 7",
            'postprocessing_config.target_class_config["car"].clustering_config.'
            "clustering_algorithm",
            id="undefined_enum_number",
        ),
        pytest.param(
            "default",
            "class_weight: 1.0",
            "class_weight: inf",
            "cost_function_config.target_classes[0].class_weight",
            id="infinite_float",
        ),
        pytest.param(
            "default",
            "num_layers: 18",
            "num_layers: 42",
            "model_config.num_layers",
            id="unsupported_num_layers",
        ),
    ],
)
def test_validate_spec_rejects_values_that_fail_later(
    run_qat, repo_root, tmp_path, spec, old, new, field_path
):
    path, (code, _, err) = _validate_edited(run_qat, repo_root, tmp_path, spec, old, new)
    assert code == 1
    assert err.splitlines()[0].startswith(f"{path}: {field_path}: ")

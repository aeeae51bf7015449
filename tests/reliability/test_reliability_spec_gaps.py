"""Known gaps found by the spec fuzzer: values that parse and validate but fail later.

Each case is ``xfail(strict=True)``: when spec validation starts rejecting it, the test passes
unexpectedly and fails the run, so the marker and the row of docs/reliability.md get updated.
"""

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
            marks=pytest.mark.xfail(
                strict=True,
                reason="open proto3 enums accept any integer; "
                "postprocessing later fails with KeyError",
            ),
        ),
        pytest.param(
            "default",
            "class_weight: 1.0",
            "class_weight: inf",
            "cost_function_config.target_classes[0].class_weight",
            id="infinite_float",
            marks=pytest.mark.xfail(strict=True, reason="inf passes '>= 0' rules"),
        ),
        pytest.param(
            "default",
            "num_layers: 18",
            "num_layers: 42",
            "model_config.num_layers",
            id="unsupported_num_layers",
            marks=pytest.mark.xfail(
                strict=True,
                reason="checked only when the model is built (qat train, after TensorFlow starts)",
            ),
        ),
    ],
)
def test_validate_spec_rejects_values_that_fail_later(
    run_qat, repo_root, tmp_path, spec, old, new, field_path
):
    path, (code, _, err) = _validate_edited(run_qat, repo_root, tmp_path, spec, old, new)
    assert code == 1
    assert err.splitlines()[0].startswith(f"{path}: {field_path}: ")

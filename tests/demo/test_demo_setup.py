"""The demo's workdir handling, settings and spec files (no training)."""

import json

import pytest

from tao_qat.common.errors import UsageError
from tao_qat.demo import specs
from tao_qat.demo.run_demo import SETTINGS_FILE, all_steps, prepare_workdir
from tao_qat.demo.settings import DEFAULT, QUICK
from tao_qat.spec.loader import load_experiment_spec, load_inference_spec


def test_new_workdir_records_the_settings(tmp_path):
    workdir = prepare_workdir(tmp_path / "demo", QUICK, force=False)
    assert json.loads((workdir / SETTINGS_FILE).read_text()) == {"settings": QUICK.as_dict()}
    assert prepare_workdir(workdir, QUICK, force=False) == workdir  # resume: accepted


def test_workdir_of_other_settings_needs_force(tmp_path):
    workdir = prepare_workdir(tmp_path, QUICK, force=False)
    with pytest.raises(
        UsageError, match="made with the 'quick' settings, this run uses 'default'; add --force"
    ):
        prepare_workdir(workdir, DEFAULT, force=False)
    prepare_workdir(workdir, DEFAULT, force=True)
    assert json.loads((workdir / SETTINGS_FILE).read_text())["settings"]["name"] == "default"


def test_a_folder_that_is_not_a_demo_is_refused_and_force_removes_only_demo_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a qat demo folder"):
        prepare_workdir(tmp_path, QUICK, force=False)
    for name in ("steps", "train_fp32", "export"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("old")
    (tmp_path / "report.md").write_text("old")
    prepare_workdir(tmp_path, QUICK, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SETTINGS_FILE, "mine.txt"]


def test_quick_training_specs(tmp_path):
    fp32 = specs.experiment_spec(QUICK, tmp_path / "tfrecords", QUICK.fp32_epochs)
    pre = fp32.augmentation_config.preprocessing
    assert (pre.output_image_width, pre.output_image_height, pre.enable_auto_resize) == (
        192,
        192,
        True,
    )
    assert fp32.augmentation_config.spatial_augmentation.translate_max_x == 12  # 24 * 192/384
    assert fp32.training_config.num_epochs == 3 and not fp32.training_config.enable_qat
    assert fp32.model_config.num_layers == 10 and fp32.random_seed == 42
    assert fp32.evaluation_config.validation_period_during_training == 1
    source = fp32.dataset_config.data_sources[0]
    assert source.tfrecords_path == str(tmp_path / "tfrecords" / "train" / "trees_train*")
    qat = specs.experiment_spec(
        DEFAULT,
        tmp_path,
        8,
        pretrained_model_file=tmp_path / "m.hdf5",
        load_graph=True,
        enable_qat=True,
        max_learning_rate=1e-4,
    )
    assert qat.training_config.enable_qat and qat.model_config.load_graph
    schedule = qat.training_config.learning_rate.soft_start_annealing_schedule
    assert schedule.max_learning_rate == pytest.approx(1e-4)
    assert schedule.min_learning_rate == pytest.approx(5e-6)  # min(5e-6, 1e-4 / 10)
    assert not qat.augmentation_config.preprocessing.enable_auto_resize  # 384 = tile size
    assert qat.evaluation_config.first_validation_epoch == 5  # DEFAULT validation_period


def test_written_specs_load_and_validate(tmp_path):
    experiment = specs.experiment_spec(QUICK, tmp_path, 2)
    path = specs.write_spec(experiment, tmp_path / "e.txt", header="qat demo: test\nline 2")
    assert path.read_text().startswith("# qat demo: test\n# line 2\n")
    loaded = load_experiment_spec(path)
    assert loaded.training_config.num_epochs == 2
    inference = specs.write_spec(
        specs.inference_spec(loaded, tmp_path / "m.onnx"), tmp_path / "i.txt"
    )
    spec = load_inference_spec(inference)
    assert (spec.inferencer_config.image_width, spec.inferencer_config.image_height) == (192, 192)
    assert list(spec.inferencer_config.target_classes) == ["tree"]
    clustering = spec.bbox_handler_config.classwise_bbox_handler_config["tree"].clustering_config
    assert clustering.nms_iou_threshold == pytest.approx(0.4)
    assert spec.bbox_handler_config.disable_overlay
    convert = specs.convert_spec("val")
    assert convert.kitti_config.root_directory_path == str(
        specs.EXAMPLE_DIR.joinpath("data", "val").resolve()
    )


def test_step_list_is_ordered_by_dependencies():
    steps = all_steps()
    names = [step.name for step in steps]
    assert names[0] == "convert" and names[-1] == "report"
    assert len(names) == len(set(names))
    for index, step in enumerate(steps):
        assert all(names.index(dep) < index for dep in step.deps), step.name


def test_cli_help_and_a_refused_folder(tmp_path):
    from click.testing import CliRunner

    from tao_qat.cli.demo import demo

    result = CliRunner().invoke(demo, ["--help"])
    assert result.exit_code == 0
    for flag in ("-r, --results_dir", "--quick", "--force", "[default: qat_demo]"):
        assert flag in result.output
    (tmp_path / "notes.txt").write_text("not a demo")
    result = CliRunner().invoke(demo, ["-r", str(tmp_path), "--quick"])
    assert isinstance(result.exception, UsageError) and "not a qat demo folder" in str(
        result.exception
    )

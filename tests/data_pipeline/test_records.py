"""Split selection, class mapping, path resolution and errors (tao_qat.data.records)."""

import os
import shutil

import numpy as np
import pytest
from pipeline_testing import make_experiment, write_dataset

from tao_qat.common.errors import DataError, UsageError
from tao_qat.data.records import load_split


def test_class_mapping_drops_unmapped_and_orders_by_target_classes(dataset_root):
    # target_classes = (person, car); mapping car -> car (id 1), pedestrian -> person (id 0);
    # "dontcare" is unmapped and dropped. Every frame: car (5, 10, 25, 20), person (30, 5, 40, 40).
    records = load_split(make_experiment(), "train", dataset_root)
    assert records.class_names == ("person", "car")
    boxes, classes = records.frame_boxes(0)
    assert classes.tolist() == [1, 0]
    np.testing.assert_allclose(boxes, [[5, 10, 25, 20], [30, 5, 40, 40]])
    assert records.max_boxes == 2


def test_mapping_keys_are_lower_cased_and_empty_mapping_is_identity(dataset_root):
    upper = make_experiment()
    upper.dataset_config.target_class_mapping.clear()
    upper.dataset_config.target_class_mapping["CAR"] = "car"
    _, classes = load_split(upper, "train", dataset_root).frame_boxes(0)
    assert classes.tolist() == [1]
    # No mapping at all: source classes equal to a target class name are kept (car only).
    upper.dataset_config.target_class_mapping.clear()
    _, classes = load_split(upper, "train", dataset_root).frame_boxes(0)
    assert classes.tolist() == [1]


@pytest.mark.parametrize(
    "fold, validation_ids, train_ids",
    [
        (0, ["000", "001"], ["002", "003", "004", "005"]),
        (1, ["002", "003", "004", "005"], ["000", "001"]),
    ],
)
def test_validation_fold_selects_fold_files(dataset_root, fold, validation_ids, train_ids):
    # Fold file 0 holds frames 000-001, fold file 1 holds 002-005.
    experiment = make_experiment(validation=f"validation_fold: {fold}")
    validation = load_split(experiment, "validation", dataset_root)
    train = load_split(experiment, "train", dataset_root)
    train_eval = load_split(experiment, "train_eval", dataset_root)
    assert [f[-3:] for f in validation.frame_ids] == validation_ids
    assert [f[-3:] for f in train.frame_ids] == train_ids
    assert train_eval.frame_ids == train.frame_ids
    assert all(f"fold-{fold:03d}-of-" in path for path in validation.files)


def test_validation_data_source_is_used_instead_of_folds(tmp_path):
    write_dataset(tmp_path / "a", num_frames=3, folds=())
    write_dataset(tmp_path / "b", num_frames=2, folds=())
    validation = (
        'validation_data_source { tfrecords_path: "b/tfrecords/*" '
        'image_directory_path: "b/images" source_weight: 2.5 }'
    )
    experiment = make_experiment("a/tfrecords/*", "a/images", validation)
    train = load_split(experiment, "train", tmp_path)
    val = load_split(experiment, "validation", tmp_path)
    assert len(train) == 3 and len(val) == 2
    assert val.image_paths[0] == os.path.join(str(tmp_path), "b/images", "image_2/000.png")
    # source_weight 0 (unset) -> 1.0; set -> as given.
    assert train.source_weights.tolist() == [1.0] * 3
    assert val.source_weights.tolist() == [2.5, 2.5]


def test_relative_paths_resolve_against_spec_dir_not_cwd(
    dataset_root, tmp_path_factory, monkeypatch
):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    records = load_split(make_experiment(), "validation", dataset_root)
    assert records.image_paths[0] == os.path.join(str(dataset_root), "images", "image_2/000.png")
    # Absolute paths are used as they are.
    absolute = make_experiment(f"{dataset_root}/tfrecords/*", f"{dataset_root}/images")
    assert len(load_split(absolute, "train", spec_dir="/nonexistent")) == 4


def test_glob_skips_warning_json(dataset_root):
    (dataset_root / "tfrecords" / "train_warning.json").write_text("{}")
    assert len(load_split(make_experiment(), "train", dataset_root)) == 4


def test_glob_matching_nothing_names_field_and_pattern(dataset_root):
    with pytest.raises(DataError) as info:
        load_split(make_experiment("nothing/*.tfrecord"), "train", dataset_root)
    message = str(info.value)
    assert "dataset_config.data_sources[0].tfrecords_path" in message
    assert "nothing/*.tfrecord" in message and "matches no file" in message


def test_missing_image_names_file_and_record(dataset_root):
    os.remove(dataset_root / "images" / "image_2" / "003.png")
    with pytest.raises(DataError) as info:
        load_split(make_experiment(), "train", dataset_root)
    message = str(info.value)
    assert message.startswith(str(dataset_root / "images" / "image_2" / "003.png"))
    assert "image file not found" in message and "'image_2/003'" in message


def test_missing_image_folder_counts_all_missing(dataset_root):
    shutil.rmtree(dataset_root / "images")
    with pytest.raises(DataError, match="3 more image"):
        load_split(make_experiment(), "train", dataset_root)


def test_no_validation_configured_is_an_error(dataset_root):
    experiment = make_experiment(validation="")
    with pytest.raises(DataError, match="no validation data"):
        load_split(experiment, "validation", dataset_root)
    # Without a validation fold every file is training data.
    assert len(load_split(experiment, "train", dataset_root)) == 6


def test_validation_fold_without_files_is_an_error(dataset_root):
    with pytest.raises(DataError, match="validation fold 5"):
        load_split(make_experiment(validation="validation_fold: 5"), "validation", dataset_root)


def test_unknown_split_is_a_usage_error(dataset_root):
    with pytest.raises(UsageError, match="unknown split 'test'"):
        load_split(make_experiment(), "test", dataset_root)


def test_corrupt_tfrecord_names_file(dataset_root):
    bad = dataset_root / "tfrecords" / "train-fold-001-of-002"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(DataError, match="train-fold-001-of-002: not a readable TFRecord"):
        load_split(make_experiment(), "train", dataset_root)

"""Calibration tensor files (HDF5, NCHW float32) and ``qat calibration_tensorfile`` (TAO §9)."""

import h5py
import numpy as np
import pytest

from tao_qat.common.errors import DataError, OutputExistsError
from tao_qat.export.tensorfile import TensorFile, write_tensorfile


def nhwc_batches(sizes, height=5, width=7, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, height, width, 3), dtype=np.float32) for n in sizes]


def test_write_nhwc_read_nchw_in_any_batch_size(tmp_path):
    batches = nhwc_batches([4, 4, 2])
    images, num_batches = write_tensorfile(tmp_path / "cal.h5", batches)
    assert (images, num_batches) == (10, 3)
    everything = np.concatenate(batches).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    with TensorFile(tmp_path / "cal.h5") as tensors:
        assert (tensors.num_images, tensors.image_shape, tensors.batch_size) == (10, (3, 5, 7), 4)
        read = list(tensors.batches())
        assert [b.shape[0] for b in read] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate(read), everything)
        # re-batched by 3: 3 + 3 + 3 + 1, or 3 full batches for a fixed-batch calibrator
        assert [b.shape[0] for b in tensors.batches(3)] == [3, 3, 3, 1]
        assert [b.shape[0] for b in tensors.batches(3, drop_remainder=True)] == [3, 3, 3]
        assert len(list(tensors.batches(max_batches=2))) == 2
        nhwc = next(tensors.batches(layout="NHWC"))
        np.testing.assert_array_equal(nhwc, batches[0])
    with h5py.File(tmp_path / "cal.h5") as handle:
        assert handle.attrs["layout"] == "NCHW" and handle.attrs["format_version"] == 1
        assert handle["images"].dtype == np.float32


def test_max_batches_and_overwrite_rules(tmp_path):
    path = tmp_path / "cal.h5"
    assert write_tensorfile(path, nhwc_batches([2, 2, 2]), max_batches=2) == (4, 2)
    with pytest.raises(OutputExistsError, match="cal.h5"):
        write_tensorfile(path, nhwc_batches([1]))
    assert write_tensorfile(path, nhwc_batches([1]), force=True) == (1, 1)


def test_failed_write_leaves_nothing(tmp_path):
    batches = nhwc_batches([2]) + nhwc_batches([2], height=6)
    with pytest.raises(ValueError, match="image shape"):
        write_tensorfile(tmp_path / "cal.h5", batches)
    with pytest.raises(DataError, match="no images"):
        write_tensorfile(tmp_path / "empty.h5", [])
    assert list(tmp_path.iterdir()) == []


def test_reading_a_foreign_file_is_a_data_error(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(DataError, match="no 4-D 'images' dataset"):
        TensorFile(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        TensorFile(tmp_path / "text.h5")


def test_cli_writes_the_unaugmented_pipeline_images(
    calibration_project, tmp_path, run_qat, monkeypatch
):
    from tao_qat.cli.main import COMMANDS
    from tao_qat.data.pipeline import build_dataset
    from tao_qat.spec.loader import load_experiment_spec

    # the registration the lead adds to tao_qat.cli.main.COMMANDS (a no-op once it is there)
    monkeypatch.setitem(
        COMMANDS,
        "calibration_tensorfile",
        "tao_qat.cli.calibration_tensorfile:calibration_tensorfile",
    )
    out = tmp_path / "train.h5"
    code, stdout, stderr = run_qat("calibration_tensorfile", "-e", calibration_project, "-o", out)
    assert code == 0, stderr
    assert "6 images in 2 batches" in stdout  # 6 training images, batch_size_per_gpu 4
    experiment = load_experiment_spec(calibration_project)
    expected = np.concatenate(
        [
            b["images"].numpy()
            for b in build_dataset(experiment, "train_eval", spec_dir=calibration_project.parent)
        ]
    )
    with TensorFile(out) as tensors:
        stored = np.concatenate(list(tensors.batches(layout="NHWC")))
    np.testing.assert_array_equal(stored, expected)  # same order, no augmentation
    assert stored.min() >= 0.0 and stored.max() <= 1.0

    val = tmp_path / "val.h5"
    code, stdout, _ = run_qat(
        "calibration_tensorfile",
        "-e",
        calibration_project,
        "-o",
        val,
        "--use_validation_set",
        "-m",
        "1",
    )
    assert code == 0 and "3 images in 1 batches" in stdout
    with TensorFile(val) as tensors:
        assert tensors.num_images == 3 and tensors.image_shape == (3, 64, 64)

    code, _, stderr = run_qat("calibration_tensorfile", "-e", calibration_project, "-o", val)
    assert code == 2 and "already exists (use --force" in stderr
    code, _, stderr = run_qat(
        "calibration_tensorfile", "-e", calibration_project, "-o", tmp_path / "x.h5", "-m", "0"
    )
    assert code == 2 and "-m/--max_batches" in stderr

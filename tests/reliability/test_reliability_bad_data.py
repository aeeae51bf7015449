"""Bad data through ``qat dataset_convert`` and ``qat train``: one line naming the file (and line)
or the spec field, or a counted, reported skip; never a traceback, never silent.

- an image the TFRecords reference is truncated or deleted after conversion (train, validation);
- a KITTI label with a NaN, infinite or non-numeric coordinate, or a missing field;
- boxes partly or entirely outside the image, inverted boxes, classes the spec does not map;
- an empty training or validation split (a source with zero records, no validation fold);
- TensorFlow's C++ log (``Premature end of JPEG data`` for a truncated JPEG) stays off stderr,
  next to the one error line, unless ``-v`` or the user's own ``TF_CPP_MIN_LOG_LEVEL``.
"""

import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from reliability_helpers import QAT_ENV, edit_spec, qat_command, tiny_project

from tao_qat.common.tensorflow_setup import tf
from tao_qat.data.synthetic import write_synthetic_kitti


@pytest.fixture(scope="module")
def base_project(tmp_path_factory):
    """A tiny project (8 train / 4 val images, records converted) with validation after epoch 1."""
    root = tmp_path_factory.mktemp("bad_data") / "base"
    tiny_project(root, epochs=1, validation=True)
    return root


@pytest.fixture
def project(base_project, tmp_path):
    """A private copy of ``base_project``: (root, experiment spec path)."""
    root = tmp_path / "project"
    shutil.copytree(base_project, root)
    return root, root / "experiment.txt"


def _error_line(err, command="train"):
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"qat {command}: error:")]
    assert len(lines) == 1, err
    return lines[0].removeprefix(f"qat {command}: error: ")


# image to damage, damage, expected message (after the image path)
IMAGES = {
    "truncated_train_image": ("train", "truncate", "cannot decode image (corrupt or not an image)"),
    "truncated_validation_image": (
        "val",
        "truncate",
        "cannot decode image (corrupt or not an image)",
    ),
    "deleted_train_image": (
        "train",
        "delete",
        "image file not found (from {root}/records/train-fold-001-of-002-shard-00000-of-00001, "
        "frame/id 'image_2/000003')",
    ),
    "deleted_validation_image": (
        "val",
        "delete",
        "image file not found (from {root}/records/val-fold-001-of-002-shard-00000-of-00001, "
        "frame/id 'image_2/000003')",
    ),
}


@pytest.mark.parametrize(
    "case",
    # A truncated image fails while training (about 10-15 s); a deleted one before it starts.
    [pytest.param(c, marks=pytest.mark.slow) if "truncated" in c else c for c in IMAGES],
)
def test_train_names_a_damaged_or_missing_image(case, project, run_qat):
    root, spec = project
    split, damage, message = IMAGES[case]
    image = root / "kitti" / split / "image_2" / "000003.png"
    if damage == "truncate":
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    else:
        image.unlink()
    code, _, err = run_qat("train", "-e", spec, "-r", root / "results")
    assert code == 1
    assert _error_line(err) == f"{image}: {message.format(root=root)}"
    # A corrupt validation image stops training at the end of epoch 1, before its checkpoint.
    assert not (root / "results" / "weights" / "model.hdf5").exists()
    assert not (root / "results" / "model.epoch-1.hdf5").exists()


LABEL_DAMAGE = {
    "nan": ("nan", "field 5 (bbox left) is not finite: 'nan'"),
    "inf": ("-inf", "field 5 (bbox left) is not finite: '-inf'"),
    "overflow": ("1e999", "field 5 (bbox left) is not finite: '1e999'"),
    "word": ("left", "field 5 (bbox left) is not a number: 'left'"),
    "missing_field": (None, "expected 15 whitespace-separated fields for a KITTI label, got 14"),
}


@pytest.mark.parametrize("case", list(LABEL_DAMAGE))
def test_dataset_convert_names_file_and_line_of_a_bad_coordinate(case, tmp_path, run_qat):
    write_synthetic_kitti(
        tmp_path / "kitti", 4, image_size=(32, 32), box_size=(6, 12), objects_per_image=(2, 2)
    )
    label = tmp_path / "kitti" / "label_2" / "000002.txt"
    lines = label.read_text().splitlines()
    fields = lines[1].split()
    value, message = LABEL_DAMAGE[case]
    if value is None:
        del fields[4]
    else:
        fields[4] = value
    lines[1] = " ".join(fields)
    label.write_text("\n".join(lines) + "\n")
    spec = tmp_path / "spec.txt"
    spec.write_text(
        'kitti_config { root_directory_path: "kitti" image_dir_name: "image_2" '
        'label_dir_name: "label_2" image_extension: ".png" partition_mode: "random" '
        "num_partitions: 2 val_split: 25 num_shards: 1 }\n"
    )
    out = tmp_path / "out"
    code, stdout, err = run_qat("dataset_convert", "-d", spec, "-o", out / "kitti")
    assert code == 1 and stdout == ""
    assert _error_line(err, "dataset_convert") == f"{label}:2: {message}"
    assert not out.exists() or list(out.iterdir()) == []


def _label(name, x1, y1, x2, y2):
    return f"{name} 0.00 0 0.00 {x1} {y1} {x2} {y2} 0.00 0.00 0.00 0.00 0.00 0.00 0.00\n"


@pytest.mark.slow
def test_boxes_outside_inverted_and_unknown_classes_are_counted_and_reported(
    project, run_qat, caplog
):
    root, spec = project
    labels = root / "kitti" / "train" / "label_2"
    extra = {
        "000000": _label("car", -10, 5, 20, 30),  # partly outside the 64x64 image: kept
        "000001": _label("person", 70, 70, 90, 90),  # entirely outside: kept
        "000002": _label("car", 30, 30, 20, 40),  # inverted: skipped by dataset_convert
        "000003": _label("truck", 10, 10, 30, 30),  # class not in target_class_mapping
    }
    for stem, line in extra.items():
        with open(labels / f"{stem}.txt", "a") as handle:
            handle.write(line)
    convert_results = root / "convert_results"
    code, out, err = run_qat(
        "dataset_convert",
        "-d",
        root / "export_train.txt",
        "-o",
        root / "records" / "train",
        "--force",
        "-r",
        convert_results,
    )
    assert code == 0, err
    assert "Skipped 1 object(s) with int(x1) >= int(x2) or int(y1) >= int(y2)" in out
    assert "2 object(s) have boxes extending outside their image (1 entirely outside), e.g. " in out
    assert "kept as TAO does: training clips boxes to the image" in out
    assert "truck" in out  # the class map lists every class written
    status = json.loads((convert_results / "status.json").read_text())
    assert status["skipped_objects"] == 1 and status["objects_outside_image"] == 2
    warning = json.loads((root / "records" / "train_warning.json").read_text())
    assert warning == {
        f"{labels}/000002.txt_{_count_lines(labels / '000002.txt') - 1}": [30, 30, 20, 40]
    }

    caplog.clear()
    code, out, err = run_qat("train", "-e", spec, "-r", root / "results")
    assert code == 0, err
    ignored = [m for m in caplog.messages if "not in dataset_config.target_class_mapping" in m]
    assert ignored == [
        "train split (dataset_config.data_sources[0]): 1 object(s) of classes not in "
        "dataset_config.target_class_mapping ignored: truck 1"
    ]


def _count_lines(path):
    return len(path.read_text().splitlines())


def _write_empty_records(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)):
        pass


# spec edit, expected message ({root} = project folder)
EMPTY = {
    "empty_train_source": (
        {'tfrecords_path: "records/train*"': 'tfrecords_path: "records/empty*"'},
        "dataset_config.data_sources[0].tfrecords_path ('{root}/records/empty*'): no record: "
        "the train split is empty",
    ),
    "empty_validation_source": (
        {'tfrecords_path: "records/val*"': 'tfrecords_path: "records/empty*"'},
        "dataset_config.validation_data_source.tfrecords_path ('{root}/records/empty*'): no "
        "record: the validation split is empty",
    ),
    # export_train.txt converts with num_partitions 2 and val_split 0: fold 0 (validation) is
    # empty and dataset_convert writes no file for it (with a warning).
    "no_validation_fold": (
        {
            '  validation_data_source { tfrecords_path: "records/val*" image_directory_path: '
            '"kitti/val" }': "  validation_fold: 0"
        },
        "dataset_config.validation_fold: no TFRecord file of '{root}/records/train*' contains "
        "validation fold 0 (file names with 'fold-000-of-')",
    ),
}


@pytest.mark.parametrize("case", list(EMPTY))
def test_train_names_the_spec_field_of_an_empty_split(case, project, run_qat, caplog):
    root, spec = project
    replacements, message = EMPTY[case]
    _write_empty_records(root / "records" / "empty.tfrecord")
    edit_spec(spec, replacements)
    if case == "no_validation_fold":
        caplog.clear()
        code, _, err = run_qat(
            "dataset_convert",
            "-d",
            root / "export_train.txt",
            "-o",
            root / "records" / "train",
            "--force",
        )
        assert code == 0, err
        assert "partition 0 is empty: no file written for it" in caplog.messages
    code, _, err = run_qat("train", "-e", spec, "-r", root / "results")
    assert code == 1
    assert _error_line(err) == message.format(root=root)
    assert not (root / "results" / "model.epoch-1.hdf5").exists()


# A TensorFlow C++ log line: ``E0000 00:00:1795864893.093971   13696 jpeg_mem.cc:331] ...``.
_TF_CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")


def _truncated_jpeg(size=64):
    """Bytes of a random RGB JPEG of size x size, cut in half (libjpeg decodes the first rows
    and logs "Premature end of JPEG data"; TensorFlow then fails the decode)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def _env(**settings):
    """QAT_ENV without the TensorFlow log settings (tests/conftest.py sets one), plus
    ``settings``."""
    env = {k: v for k, v in QAT_ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TAO_QAT_VERBOSE")}
    return {**env, **settings}


_DECODE_SNIPPET = """
import sys
from tao_qat.common.errors import DataError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.data.decode import decode_images, reraise_data_errors
images = decode_images(tf.data.Dataset.from_tensor_slices({"image_path": [sys.argv[1]]}), 3)
try:
    with reraise_data_errors():
        list(images)
except DataError as exc:
    print(f"error: {exc}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "settings, log_shown",
    [({}, False), ({"TAO_QAT_VERBOSE": "1"}, True), ({"TF_CPP_MIN_LOG_LEVEL": "2"}, True)],
    ids=["default", "verbose", "user_log_level"],
)
def test_tensorflow_cpp_log_of_a_truncated_jpeg_only_with_verbose(tmp_path, settings, log_shown):
    image = tmp_path / "truncated.jpg"
    image.write_bytes(_truncated_jpeg())
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_SNIPPET, str(image)],
        capture_output=True,
        text=True,
        env=_env(**settings),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    error = f"error: {image}: cannot decode image (corrupt or not an image)"
    lines = done.stderr.splitlines()
    assert error in lines
    premature = [line for line in lines if "Premature end of JPEG data" in line]
    if log_shown:
        assert len(premature) == 1 and _TF_CPP_LOG_LINE.match(premature[0]), lines
    else:
        assert lines == [error]


@pytest.mark.slow
def test_train_on_a_truncated_jpeg_prints_one_line_and_no_tensorflow_log(project):
    # The PNG file of a training image is replaced by a truncated JPEG (TensorFlow decodes by
    # content, not by extension); ``qat train`` runs as the user runs it: its own process, no
    # TF_CPP_MIN_LOG_LEVEL, no -v.
    root, spec = project
    image = root / "kitti" / "train" / "image_2" / "000003.png"
    image.write_bytes(_truncated_jpeg())
    done = subprocess.run(
        qat_command("train", "-e", spec, "-r", root / "results"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        f"qat train: error: {image}: cannot decode image (corrupt or not an image)"
    ]
    assert not (root / "results" / "model.epoch-1.hdf5").exists()

"""Full disk: ``qat train`` and ``qat export`` writing to a small tmpfs.

``full_disk_run.py`` mounts the tmpfs (as root, else under ``unshare -rm``; the test is skipped
with the reason when neither works), lets training write its first checkpoint, then shrinks
the tmpfs so that the second one cannot be written: its ``model.epoch-2.hdf5`` (h5py fails), or
only its resumable TensorFlow checkpoint (SaveV2 fails). Expected: exit 1 with one line naming
the file, "No space left on device" and the checkpoint kept; the first checkpoint intact and
loadable; no temp file left on the tmpfs. ``qat export`` on a full tmpfs names the final ONNX
(not its staged copy) and leaves no staging folder. The tmpfs is always unmounted (and copied
out first).
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import (
    assert_model_loads,
    check_results_complete,
    hdf5_files,
    qat_command,
    status_lines,
    tiny_project,
)

from tao_qat.export.staged_outputs import StagedOutputs
from tao_qat.training.checkpoints import list_checkpoints

HELPER = Path(__file__).resolve().parent / "full_disk_run.py"
MOUNT_FAILED = 77


def run_on_tmpfs(tmp_path, size, watch, command, margin="half_hdf5"):
    """Run ``command`` via full_disk_run.py with a tmpfs on ``tmp_path/disk``; return its report
    (the tmpfs content is copied to ``tmp_path/copy``)."""
    mount, copy = tmp_path / "disk", tmp_path / "copy"
    args = [sys.executable, str(HELPER), str(mount), str(copy), size, str(watch), "--", *command]
    prefixes = ([[]] if os.geteuid() == 0 else []) + [["unshare", "-rm"]]
    reasons = []
    for prefix in prefixes:
        try:
            done = subprocess.run(
                [*prefix, *args],
                capture_output=True,
                text=True,
                timeout=600,
                env={**os.environ, "FULL_DISK_MARGIN": margin},
            )
        except FileNotFoundError as exc:  # no unshare
            reasons.append(str(exc))
            continue
        if done.returncode == MOUNT_FAILED or (prefix and not done.stdout.strip()):
            reasons.append(f"{' '.join(prefix) or 'mount'}: {done.stderr.strip()[-300:]}")
            continue
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)
    pytest.skip(f"cannot mount a small tmpfs here ({'; '.join(reasons)})")


def _error_lines(stderr, command):
    return [line for line in stderr.splitlines() if line.startswith(f"qat {command}: error:")]


def _hidden(files):
    return [f for f in files if any(part.startswith(".") for part in f.split("/"))]


@pytest.mark.slow
@pytest.mark.parametrize(
    "margin, target",
    [
        ("half_hdf5", "model.epoch-2.hdf5"),
        ("hdf5_and_half_checkpoint", "checkpoints/epoch-2"),
    ],
    ids=["hdf5_does_not_fit", "tf_checkpoint_does_not_fit"],
)
def test_train_on_a_full_disk_fails_cleanly_and_keeps_the_first_checkpoint(
    tmp_path, margin, target
):
    spec = tiny_project(tmp_path / "project", epochs=4)
    results = tmp_path / "disk" / "results"
    report = run_on_tmpfs(
        tmp_path,
        "400m",
        results / "checkpoints" / "epoch-1",
        qat_command("train", "-e", spec, "-r", results),
        margin=margin,
    )
    assert report["remount"] == 0, report
    print(f"tmpfs shrunk to {report['size']} bytes after epoch 1 ({report['used_at_shrink']} used)")
    err = report["stderr"]
    assert report["returncode"] == 1, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    assert _error_lines(err, "train") == [
        f"qat train: error: {results}/{target}: cannot write the checkpoint of epoch 2 (No space "
        f"left on device); the checkpoint of epoch 1 ({results}/checkpoints/epoch-1) is kept"
    ]
    # Nothing half-written on the full disk: no temp file or folder is left.
    assert _hidden(report["files"]) == []
    copied = tmp_path / "copy" / "results"
    assert [info.epoch for info in list_checkpoints(copied)] == [1]
    expected_hdf5 = [1] if margin == "half_hdf5" else [1, 2]  # a complete epoch-2 .hdf5 stays
    assert sorted(hdf5_files(copied)) == expected_hdf5
    check_results_complete(copied)
    assert_model_loads(hdf5_files(copied)[1], finite=True)
    records = status_lines(copied)
    assert [r["epoch"] for r in records if r.get("epoch")] == [1, 2]
    assert (
        records[-1]["status"] == "FAILURE" and "No space left on device" in records[-1]["message"]
    )
    assert not (copied / "weights" / "model.hdf5").exists()


@pytest.mark.slow
def test_export_on_a_full_disk_fails_cleanly(tmp_path, run_qat):
    model = tmp_path / "model.hdf5"
    _tiny_detector(model)
    output = tmp_path / "disk" / "out" / "model.onnx"
    report = run_on_tmpfs(tmp_path, "2m", "-", qat_command("export", "-m", model, "-o", output))
    err = report["stderr"]
    assert report["returncode"] == 1, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    # The ONNX is written into the export's hidden staging folder
    # (``<out>/.qat_export_<random>/model.onnx``); the line names the output the user asked for.
    assert _error_lines(err, "export") == [
        f"qat export: error: {output}: No space left on device"
    ], err[-2000:]
    assert ".qat_export_" not in err
    # No ONNX, no temp file, no staging folder: only the (empty) output folder export created.
    assert report["files"] == []
    assert report["entries"] == ["out"]


def test_errors_inside_the_staging_folder_name_the_final_output(tmp_path):
    # What ``atomic_path`` raises on a full disk while writing a staged file: an OSError naming
    # the staged path. Leaving the block, it names the final output; the staging folder goes.
    out = tmp_path / "out"
    with pytest.raises(OSError) as caught, StagedOutputs() as staged:
        onnx = staged.stage(out / "model.onnx")
        staged.stage(out / "labels.txt").write_text("car\n")
        assert onnx.parent.name.startswith(".qat_export_") and onnx.parent.parent == out
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(onnx))
    assert (caught.value.filename, caught.value.strerror) == (
        str(out / "model.onnx"),
        "No space left on device",
    )
    assert list(out.iterdir()) == []
    # Paths outside the staging folders are left as they are.
    elsewhere = str(tmp_path / "model.hdf5")
    with pytest.raises(OSError) as caught, StagedOutputs() as staged:
        staged.stage(out / "model.onnx")
        raise OSError(errno.EIO, os.strerror(errno.EIO), elsewhere)
    assert caught.value.filename == elsewhere


def _tiny_detector(path):
    """Save a float ResNet-10 DetectNet_v2 detector (2 classes, 64x64) to ``path`` (20 MB)."""
    from tao_qat.common.tensorflow_setup import keras
    from tao_qat.modeling.detectnet import build_detectnet_v2
    from tao_qat.modeling.model_io import save_model

    keras.utils.set_random_seed(0)
    save_model(build_detectnet_v2(10, 2, (64, 64, 3)), path)

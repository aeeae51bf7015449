"""Helpers of the reliability tests: tiny synthetic training projects, ``qat`` subprocesses, and
checks that every file under a final name in a training results folder is complete.

Projects come from ``tests/workflow/synthetic_workflow.py`` (64x64 images, ResNet-10); with
8 training images and batch 8 an epoch is one step, so most of a run is TensorFlow start-up and
checkpoint writing (a ``model.epoch-<E>.hdf5`` of 20 MB and a resumable checkpoint of 59 MB).
"""

import json
import os
import re
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from synthetic_workflow import make_synthetic_project  # noqa: E402

# Unbuffered: the output of a killed run is not lost in the child's stdout buffer.
QAT_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
_EPOCH_HDF5 = re.compile(r"^model\.epoch-(\d+)\.hdf5$")


def tiny_project(root, *, epochs, batch_size=8, num_train=8, validation=False, **spec_args):
    """A synthetic project (8 train / 4 val images, 64x64) and its experiment spec path.

    ``validation=False`` removes ``validation_data_source`` (no validation dataset is built:
    start-up is about 3 s shorter); otherwise validation runs after the last epoch only.
    """
    spec = make_synthetic_project(
        root,
        num_train=num_train,
        num_val=4,
        width=64,
        height=64,
        epochs=epochs,
        batch_size=batch_size,
        first_validation_epoch=epochs,
        **spec_args,
    )
    if not validation:
        edit_spec(
            spec,
            {
                '  validation_data_source { tfrecords_path: "records/val*" '
                'image_directory_path: "kitti/val" }\n': ""
            },
        )
    return spec


def edit_spec(spec, replacements):
    """Apply {old: new} text replacements to the spec file; each ``old`` must occur."""
    text = Path(spec).read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {spec}"
        text = text.replace(old, new)
    Path(spec).write_text(text)


def qat_command(*args):
    """argv running ``qat <args>`` with this interpreter."""
    return [sys.executable, "-m", "tao_qat.cli.main", *(str(a) for a in args)]


def temp_files(results):
    """Hidden temp files and folders of interrupted writes anywhere under ``results``."""
    return sorted(
        p.relative_to(results).as_posix()
        for p in Path(results).rglob(".*")
        if p.name.startswith((".model", ".tmp-", ".trash-", ".status", ".experiment_spec"))
    )


def status_lines(results):
    """Records of ``status.json``; every line must be complete JSON (asserted)."""
    path = Path(results) / "status.json"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"{path}: last line is cut: {text[-80:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def status_epochs(results):
    """Epoch numbers of the RUNNING records of ``status.json``, in file order."""
    return [r["epoch"] for r in status_lines(results) if r.get("epoch") is not None]


def hdf5_files(results):
    """{epoch: path} of the ``model.epoch-<E>.hdf5`` files of ``results``."""
    found = {}
    for path in Path(results).iterdir() if Path(results).is_dir() else ():
        match = _EPOCH_HDF5.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def read_all_hdf5(path):
    """Read every dataset of an HDF5 file (fails on a truncated or damaged file)."""
    with h5py.File(path, "r") as handle:
        arrays = []
        handle.visititems(
            lambda _, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return len(arrays)


def assert_model_loads(path, finite=True):
    """Load ``path`` with ``model_io.load_model_file``; check its weights are finite."""
    from tao_qat.modeling.model_io import load_model_file

    model = load_model_file(path)
    if finite:
        bad = [w.name for w in model.weights if not np.all(np.isfinite(w.numpy()))]
        assert bad == [], f"{path}: non-finite weights {bad[:3]}"
    return model


def assert_checkpoint_reads(info):
    """Read every tensor of a resumable checkpoint (``CheckpointInfo``) with TF's reader."""
    from tao_qat.common.tensorflow_setup import tf

    reader = tf.train.load_checkpoint(info.prefix)
    names = list(reader.get_variable_to_shape_map())
    for name in names:
        reader.get_tensor(name)
    assert names, f"{info.path}: empty checkpoint"


def check_results_complete(results, verified=None, load=True):
    """Assert every file of ``results`` under a final name is complete; return a cache.

    - every ``model.epoch-<E>.hdf5`` and ``weights/*.hdf5`` loads (``load``) or reads fully;
    - every ``checkpoints/epoch-<E>`` folder is complete (marker, sizes) and every tensor reads;
    - ``status.json`` is whole lines of JSON.
    ``verified`` ({(name, size, mtime): True}) skips files checked by an earlier call.
    """
    from tao_qat.training.checkpoints import CHECKPOINTS_DIRNAME, list_checkpoints

    verified = dict(verified or {})
    results = Path(results)
    status_lines(results)
    models = list(hdf5_files(results).values())
    weights = results / "weights"
    models += sorted(weights.glob("*.hdf5")) if weights.is_dir() else []
    for path in models:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in verified:
            assert_model_loads(path, finite=False) if load else read_all_hdf5(path)
            verified[key] = True
    root = results / CHECKPOINTS_DIRNAME
    infos = list_checkpoints(results)
    if root.is_dir():
        folders = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        assert folders == sorted(i.path.name for i in infos), f"incomplete checkpoint in {folders}"
    for info in infos:
        marker = (info.path / "COMPLETE.json").read_text()
        key = (str(info.path), marker)
        if key not in verified:
            assert_checkpoint_reads(info)
            verified[key] = True
    return verified

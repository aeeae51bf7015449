"""Periodic checkpoints and resume (reference §2 training artefacts): crash-safe and pruned.

Layout in ``results_dir`` (TAO writes ``model.epoch-<E>.hdf5`` + ``model.epoch-<E>.ckzip``)::

    model.epoch-<E>.hdf5             Keras model without optimizer, for users (kept)
    checkpoints/epoch-<E>/           resumable: tf.train.Checkpoint of model, optimizer, epoch
        ckpt.index, ckpt.data-*      counter and whatever else the trainer passes (objective
        COMPLETE.json                auto-weights, early-stopping state); marker written last
    checkpoints/.tmp-epoch-<E>-*/    being written (invisible; removed by the next save)

A resumable checkpoint is written into a temp folder, every file fsync'd, the marker
``COMPLETE.json`` (epoch, file sizes) written last, then the folder is renamed to
``epoch-<E>`` (atomic on POSIX). So after ``kill -9`` at any moment a checkpoint is either
complete or invisible: ``find_latest_checkpoint`` only returns ``epoch-<E>`` folders whose marker
parses, names the same epoch and matches the sizes of the files on disk. A save that fails (full
disk, I/O error) removes what it had written and raises ``CheckpointWriteError``, one line naming
the file, the reason and the newest complete checkpoint, which is left as it was.
"""

import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from tao_qat.common.errors import DataError, QatError
from tao_qat.common.fileio import disk_full_errno, fsync_dir
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.modeling.model_io import save_model

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointCallback",
    "CheckpointInfo",
    "CheckpointWriteError",
    "checkpoint_interval",
    "find_latest_checkpoint",
    "hdf5_checkpoint_path",
    "is_checkpoint_epoch",
    "list_checkpoints",
    "prune_checkpoints",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINTS_DIRNAME = "checkpoints"
MARKER = "COMPLETE.json"
PREFIX = "ckpt"
DEFAULT_INTERVAL = 10
_DIR_RE = re.compile(r"^epoch-(\d+)$")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_EPOCH_KEY = "checkpoint_epoch"


class CheckpointWriteError(QatError):
    """A checkpoint could not be written (full disk, I/O error); earlier ones are intact."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete resumable checkpoint: ``epoch`` completed epochs, folder ``path``."""

    epoch: int
    path: Path

    @property
    def prefix(self):
        """The tf.train.Checkpoint path prefix (``<path>/ckpt``)."""
        return str(self.path / PREFIX)


def checkpoint_interval(training_config):
    """Epochs between checkpoints: ``training_config.checkpoint_interval``, 0 -> 10."""
    return training_config.checkpoint_interval or DEFAULT_INTERVAL


def is_checkpoint_epoch(epoch, interval, num_epochs):
    """True after epochs ``interval, 2*interval, ...`` and after the last epoch (1-based)."""
    return epoch % interval == 0 or epoch == num_epochs


def hdf5_checkpoint_path(results_dir, epoch):
    """``results_dir/model.epoch-<epoch>.hdf5``."""
    return Path(results_dir) / f"model.epoch-{epoch}.hdf5"


def save_checkpoint(results_dir, epoch, objects, model=None, keep=2, is_chief=True, key=None):
    """Write the resumable checkpoint of ``epoch`` (and the user .hdf5 of ``model``).

    Args:
        results_dir: training results folder.
        epoch: completed epochs (1-based).
        objects: dict name -> trackable (``{"model": m, "optimizer": o, ...}``) saved with
            ``tf.train.Checkpoint(**objects)``; pass the same names to ``restore_checkpoint``.
        model: Keras model saved as ``model.epoch-<E>.hdf5`` (no optimizer); None to skip.
        keep: number of newest resumable checkpoints kept (>= 1); older ones are deleted.
        is_chief: False on non-chief workers of a multi-worker run: every worker must call this
            (saving reads sync-on-read variables collectively) but non-chief workers write to a
            throwaway temp folder.
        key: passphrase encrypting ``model.epoch-<E>.hdf5`` (``-k``); the resumable TF
            checkpoint stays plain (it is an internal file of the results folder).
    Returns:
        the ``CheckpointInfo`` written (None on non-chief workers).
    """
    if not is_chief:
        scratch = Path(tempfile.mkdtemp(prefix="tao_qat_worker_ckpt_"))
        try:
            _write_checkpoint_files(scratch, epoch, objects)
            if model is not None:
                _save_hdf5(model, scratch / "model.hdf5")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None
    root = Path(results_dir) / CHECKPOINTS_DIRNAME
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root)
    for stale in Path(results_dir).glob(".model.epoch-*.hdf5.*"):  # atomic_path temp, killed
        stale.unlink(missing_ok=True)
    final = root / f"epoch-{epoch}"
    target = hdf5_checkpoint_path(results_dir, epoch)
    try:
        if model is not None:
            save_model(model, target, force=True, key=key)
        target = final
        _write_checkpoint_dir(root, final, epoch, objects)
    except (OSError, tf.errors.OpError) as exc:
        raise CheckpointWriteError(_write_failure(results_dir, target, epoch, exc)) from exc
    info = CheckpointInfo(epoch, final)
    logger.info("checkpoint saved: %s", final)
    prune_checkpoints(results_dir, keep)
    return info


def _write_checkpoint_dir(root, final, epoch, objects):
    """Write the TF checkpoint into a temp folder of ``root`` and rename it to ``final``."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}epoch-{epoch}-", dir=root))
    try:
        _write_checkpoint_files(tmp_dir, epoch, objects)
        if final.exists():  # re-written epoch (resumed from an older checkpoint)
            trash = root / f"{_TRASH_PREFIX}{final.name}-{time.time_ns()}"
            os.replace(final, trash)
            os.replace(tmp_dir, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp_dir, final)
        fsync_dir(root)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _write_failure(results_dir, target, epoch, exc):
    """One line: which file of which epoch failed, why, and what is kept."""
    code = disk_full_errno(exc)
    if code is not None:
        reason = os.strerror(code)
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        reason = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", text).strip().splitlines()[0]
        reason = reason.rsplit("; ", 1)[-1][:200]  # TF: "<file>; <reason>"
    latest = find_latest_checkpoint(results_dir)
    kept = (
        f"the checkpoint of epoch {latest.epoch} ({latest.path}) is kept"
        if latest is not None
        else "no earlier checkpoint exists"
    )
    return f"{target}: cannot write the checkpoint of epoch {epoch} ({reason}); {kept}"


def _save_hdf5(model, path):
    """Keras HDF5 without optimizer (TAO's format; Keras's "legacy format" warning silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save\\(\\)`")
        model.save(path, include_optimizer=False)


def _write_checkpoint_files(folder, epoch, objects):
    """Write the TF checkpoint into ``folder``, fsync it, then write the marker last."""
    if _EPOCH_KEY in objects:
        raise ValueError(f"objects may not use the reserved name {_EPOCH_KEY!r}")
    epoch_var = tf.Variable(epoch, dtype=tf.int64, trainable=False)
    tf.train.Checkpoint(**objects, **{_EPOCH_KEY: epoch_var}).write(str(folder / PREFIX))
    sizes = {}
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        sizes[path.name] = path.stat().st_size
    marker = {"epoch": epoch, "files": sizes, "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with open(folder / MARKER, "w", encoding="utf-8") as handle:
        json.dump(marker, handle)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(folder)


def _read_complete(path):
    """CheckpointInfo for folder ``path`` if it is a complete checkpoint, else None."""
    match = _DIR_RE.match(path.name)
    if not match or not path.is_dir():
        return None
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        epoch = int(match.group(1))
        if marker["epoch"] != epoch or not marker["files"]:
            return None
        for name, size in marker["files"].items():
            if (path / name).stat().st_size != size:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return CheckpointInfo(epoch, path)


def list_checkpoints(results_dir):
    """Complete resumable checkpoints in ``results_dir``, oldest first (list of CheckpointInfo)."""
    root = Path(results_dir) / CHECKPOINTS_DIRNAME
    if not root.is_dir():
        return []
    infos = [info for info in map(_read_complete, root.iterdir()) if info is not None]
    return sorted(infos, key=lambda info: info.epoch)


def find_latest_checkpoint(results_dir):
    """The complete checkpoint with the highest epoch, or None (partial folders are ignored)."""
    infos = list_checkpoints(results_dir)
    return infos[-1] if infos else None


def prune_checkpoints(results_dir, keep):
    """Delete all but the ``keep`` newest complete checkpoints; return the deleted folders.

    The newest complete checkpoint is never deleted (``keep`` < 1 is treated as 1).
    """
    infos = list_checkpoints(results_dir)
    doomed = infos[: max(len(infos) - max(int(keep), 1), 0)]
    for info in doomed:
        # Rename first so a kill during rmtree leaves an invisible folder, not a half one.
        trash = info.path.with_name(f"{_TRASH_PREFIX}{info.path.name}-{time.time_ns()}")
        os.replace(info.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        logger.info("checkpoint pruned: %s", info.path)
    return [info.path for info in doomed]


def _remove_stale(root):
    """Remove temp/trash folders left by a killed run (only the chief writes here)."""
    for path in root.iterdir():
        if path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def restore_checkpoint(info, objects):
    """Restore ``objects`` (same names as saved) from ``info``; return the epoch restored.

    Builds a Keras optimizer found under ``"optimizer"`` on ``objects["model"]``'s trainable
    variables first, so its slots (Adam moments) are restored now rather than lazily. Call
    inside ``strategy.scope()`` when training distributed.

    Raises:
        DataError: the checkpoint does not hold every variable of ``objects`` (e.g. the spec's
            model changed since the checkpoint was written).
    """
    optimizer, model = objects.get("optimizer"), objects.get("model")
    if (
        isinstance(optimizer, keras.optimizers.Optimizer | keras.mixed_precision.LossScaleOptimizer)
        and model is not None
    ):
        optimizer.build(model.trainable_variables)
    epoch_var = tf.Variable(-1, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(**objects, **{_EPOCH_KEY: epoch_var})
    try:
        status = checkpoint.read(info.prefix)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{info.path}: cannot resume from this checkpoint ({first})") from exc
    if int(epoch_var.numpy()) != info.epoch:
        raise DataError(f"{info.path}: holds epoch {int(epoch_var.numpy())}, expected {info.epoch}")
    logger.info("resumed from %s", info.path)
    return info.epoch


class CheckpointCallback(keras.callbacks.Callback):
    """Keras callback: ``save_checkpoint`` at the end of every checkpoint epoch.

    Args:
        results_dir: training results folder.
        interval: epochs between checkpoints (``checkpoint_interval(training_config)``).
        num_epochs: total epochs (the last epoch is always checkpointed).
        objects: zero-argument callable returning the dict of trackables to save (called at
            save time, so objects created after the callback, like optimizer slots, are seen).
        keep: newest resumable checkpoints kept.
        save_hdf5: also write ``model.epoch-<E>.hdf5``.
        hdf5_model: the Keras model written to the .hdf5 (e.g. the bare detector when ``fit``
            runs a training wrapper around it); default: the model being fit.
        is_chief, key: see ``save_checkpoint``.
    """

    def __init__(
        self,
        results_dir,
        interval,
        num_epochs,
        objects,
        keep=2,
        save_hdf5=True,
        hdf5_model=None,
        is_chief=True,
        key=None,
    ):
        super().__init__()
        self.results_dir = Path(results_dir)
        self.interval = int(interval)
        self.num_epochs = int(num_epochs)
        self.objects = objects
        self.keep = keep
        self.save_hdf5 = save_hdf5
        self.hdf5_model = hdf5_model
        self.is_chief = is_chief
        self.key = key
        self.last_saved = None

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1  # Keras epochs are 0-based
        if not is_checkpoint_epoch(completed, self.interval, self.num_epochs):
            return
        model = self.hdf5_model if self.hdf5_model is not None else self.model
        model = model if self.save_hdf5 else None
        self.last_saved = save_checkpoint(
            self.results_dir,
            completed,
            self.objects(),
            model=model,
            keep=self.keep,
            is_chief=self.is_chief,
            key=self.key,
        )

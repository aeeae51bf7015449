"""Training status: ``status.json`` (one JSON object per line) and TensorBoard scalars (§2).

``status.json`` gets one record per event: ``STARTED`` at the start, one ``RUNNING`` record per
epoch (``epoch_record``), ``SUCCESS``/``FAILURE`` at the end. Every record carries TAO's envelope
(``date``, ``time``, ``status``, ``verbosity``, ``message``); epoch records add flat fields
(fractions, seconds) and TAO's nested ``graphical`` / ``kpi`` / ``categorical`` blocks (AP in
percent, as TAO writes them). Lines are appended with fsync; a line cut by a kill is dropped
when the file is reopened, and on resume records of epochs after the resumed checkpoint are
dropped so the file reads as one consistent run. A line that cannot be appended (full disk) is
cut off again and raises an ``OSError`` naming ``status.json`` and the epoch (one line for the
user: ``<results>/status.json: cannot append the status of epoch N (No space left on device)``).

TensorFlow is imported only by ``TensorBoardWriter`` (the JSON part is TF-free).
"""

import contextlib
import json
import logging
import math
import os
import time
from datetime import datetime
from pathlib import Path

from tao_qat.common.fileio import atomic_write_text
from tao_qat.common.progress import format_duration

logger = logging.getLogger(__name__)

__all__ = ["StatusLog", "TensorBoardWriter", "epoch_record", "read_status", "repair_status_file"]

STATUS_FILENAME = "status.json"


def _finite(value):
    """float(value), or None for NaN/inf (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _sanitize(value):
    """Replace NaN/inf floats (anywhere in nested dicts/lists) by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize(v) for v in value]
    return value


def epoch_record(
    epoch,
    num_epochs,
    *,
    loss,
    learning_rate,
    step=None,
    costs=None,
    objective_weights=None,
    validation_cost=None,
    mean_average_precision=None,
    average_precision=None,
    images_per_second=None,
    epoch_seconds=None,
    eta_seconds=None,
):
    """The status record of one finished epoch (dict ready for ``StatusLog.write``).

    Args:
        epoch, num_epochs: completed epochs (1-based) and total.
        loss: mean training loss of the epoch (task cost + regularisation).
        learning_rate: learning rate of the epoch's last step.
        step: optimizer iterations so far.
        costs: {class: {objective: mean cost over the epoch}} (e.g. {"car": {"cov": .., ...}}).
        objective_weights: {class: {objective: weight}} after the epoch's auto-weighting.
        validation_cost, mean_average_precision: validation results (mAP as a fraction).
        average_precision: {class: AP as a fraction in [0, 1]}.
        images_per_second, epoch_seconds, eta_seconds: throughput and timing.
    Returns:
        dict with flat fields (None / absent when not computed) plus TAO's ``graphical``,
        ``kpi`` (percent) and ``categorical`` blocks.
    """
    record = {
        "epoch": int(epoch),
        "max_epoch": int(num_epochs),
        "loss": _finite(loss),
        "learning_rate": float(learning_rate),
    }
    if step is not None:
        record["step"] = int(step)
    if costs:
        record["costs"] = {c: {o: _finite(v) for o, v in objs.items()} for c, objs in costs.items()}
    if objective_weights:
        record["objective_weights"] = {
            c: {o: float(v) for o, v in objs.items()} for c, objs in objective_weights.items()
        }
    if images_per_second is not None:
        record["images_per_second"] = round(float(images_per_second), 3)
    if epoch_seconds is not None:
        record["epoch_seconds"] = round(float(epoch_seconds), 3)
        record["time_per_epoch"] = format_duration(epoch_seconds)
    if eta_seconds is not None:
        record["eta"] = format_duration(eta_seconds)
    record["graphical"] = {"loss": record["loss"], "learning_rate": record["learning_rate"]}
    kpi = {}
    if validation_cost is not None:
        record["validation_cost"] = _finite(validation_cost)
        kpi["validation cost"] = record["validation_cost"]
    if mean_average_precision is not None:
        record["mean_average_precision"] = float(mean_average_precision)
        kpi["mean average precision"] = 100.0 * float(mean_average_precision)
    if kpi:
        record["kpi"] = kpi
    if average_precision is not None:
        record["average_precision"] = {c: float(v) for c, v in average_precision.items()}
        record["categorical"] = {
            "average_precision": {c: 100.0 * float(v) for c, v in average_precision.items()}
        }
    return record


def repair_status_file(path):
    """Drop a trailing partial line (no final newline) left by a kill; return bytes dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return 0
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    logger.warning("%s: dropped a truncated last line (%d bytes)", path, size - keep)
    return size - keep


def read_status(path):
    """The records of a status file (list of dicts); unparsable lines are skipped. Not a
    regular file (missing, or a device such as /dev/full, which never ends): no records."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s: skipping an unreadable line", path)
    return records


def _append(path, data):
    """Append ``data`` (bytes) to ``path`` and fsync; on failure (full disk) cut the file back to
    its former size, so no partial line is left for the next record to be glued to."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # not a regular file (/dev/full)
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


class StatusLog:
    """Append-only ``status.json`` writer.

    Args:
        path: the status file (``results_dir/status.json``).
        resume_epoch: when resuming from the checkpoint of this epoch: keep only records of
            epochs <= resume_epoch (and non-epoch records), so epochs trained after that
            checkpoint and before the kill do not appear twice. None: keep everything.
        enabled: False on non-chief workers (nothing is written).
    """

    def __init__(self, path, resume_epoch=None, enabled=True):
        self.path = Path(path)
        self.enabled = enabled
        self._failed = False  # an append of this log failed
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_status_file(self.path)
        if resume_epoch is not None and self.path.exists():
            records = read_status(self.path)
            kept = [r for r in records if r.get("epoch") is None or r["epoch"] <= resume_epoch]
            if len(kept) != len(records):
                atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record, status="RUNNING", message=None, verbosity="INFO"):
        """Append ``record`` (dict) with TAO's envelope fields and fsync (OSError naming the
        file and epoch if it cannot be appended)."""
        if not self.enabled:
            return
        now = datetime.now()
        full = _sanitize(dict(record))
        full.update(
            {
                "date": f"{now.month}/{now.day}/{now.year}",
                "time": f"{now.hour}:{now.minute}:{now.second}",
                "timestamp": round(time.time(), 3),
                "status": status,
                "verbosity": verbosity,
            }
        )
        if message:
            full["message"] = message
        line = json.dumps(full, allow_nan=False) + "\n"
        try:
            _append(self.path, line.encode("utf-8"))
        except OSError as exc:
            self._failed = True
            epoch = record.get("epoch")
            what = f"the status of epoch {epoch}" if epoch is not None else f"the {status} status"
            reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"cannot append {what} ({reason})", str(self.path)) from exc

    def event(self, status, message):
        """Append a record without epoch data, e.g. ``event("STARTED", "Starting training")``.

        A ``FAILURE`` record is written while another error propagates: if it cannot be
        appended (full disk), that is logged as one warning (none if an earlier line of this
        log already failed) instead of replacing the error being reported.
        """
        if status != "FAILURE":
            self.write({}, status=status, message=message)
            return
        failed_before = self._failed
        try:
            self.write({}, status=status, message=message)
        except OSError as exc:
            if not failed_before:
                logger.warning("%s: %s", exc.filename, exc.strerror)


class TensorBoardWriter:
    """TensorBoard scalars in ``logdir`` (events files), one writer per run.

    Names: ``loss``, ``learning_rate``, ``images_per_second``, ``cost/<class>/<objective>``,
    ``objective_weight/<class>/<objective>``, ``validation/cost``, ``validation/mAP``,
    ``validation/AP/<class>`` (APs as fractions). ``step`` is the epoch number for per-epoch
    values (or the optimizer step for per-step values; keep one convention per tag).
    Written with TensorFlow's core ``tf.summary.write`` in TensorBoard's scalar format, so the
    ``tensorboard`` package is only needed to view the files, not to write them.
    """

    def __init__(self, logdir, enabled=True):
        from tao_qat.common.tensorflow_setup import tf

        self._tf = tf
        self.enabled = enabled
        self._writer = tf.summary.create_file_writer(str(logdir)) if enabled else None
        self._metadata = _scalar_metadata(tf) if enabled else None

    def scalars(self, step, values):
        """Write {tag: number} at ``step``; None values are skipped."""
        if not self.enabled:
            return
        tf = self._tf
        with self._writer.as_default():
            for tag, value in values.items():
                if value is not None:
                    tf.summary.write(
                        tag,
                        tf.constant(float(value), tf.float32),
                        step=int(step),
                        metadata=self._metadata,
                    )
        self._writer.flush()

    def epoch(self, record):
        """Write the scalars of an ``epoch_record`` at step = its epoch."""
        values = {
            "loss": record.get("loss"),
            "learning_rate": record.get("learning_rate"),
            "images_per_second": record.get("images_per_second"),
            "validation/cost": record.get("validation_cost"),
            "validation/mAP": record.get("mean_average_precision"),
        }
        for name, by_objective in (
            ("cost", record.get("costs")),
            ("objective_weight", record.get("objective_weights")),
        ):
            for cls, objectives in (by_objective or {}).items():
                for objective, value in objectives.items():
                    values[f"{name}/{cls}/{objective}"] = value
        for cls, ap in (record.get("average_precision") or {}).items():
            values[f"validation/AP/{cls}"] = ap
        self.scalars(record["epoch"], values)

    def close(self):
        if self._writer is not None:
            self._writer.close()


def _scalar_metadata(tf):
    """SummaryMetadata marking a float32 scalar tensor for TensorBoard's scalars plugin."""
    metadata = tf.compat.v1.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata.data_class = "DATA_CLASS_SCALAR"
    return metadata.SerializeToString()

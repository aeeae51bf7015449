"""status.json records, crash repair, resume truncation, and TensorBoard scalars."""

import json
import subprocess
import sys

import pytest

from tao_qat.common.tensorflow_setup import tf
from tao_qat.training.status import (
    StatusLog,
    TensorBoardWriter,
    epoch_record,
    read_status,
    repair_status_file,
)


def record(epoch, **kwargs):
    return epoch_record(epoch, 120, loss=0.5 / epoch, learning_rate=5e-4, **kwargs)


def test_epoch_record_fields():
    rec = epoch_record(
        3,
        120,
        loss=0.0125,
        learning_rate=5e-4,
        step=300,
        costs={"car": {"cov": 0.01, "bbox": 0.0025}},
        objective_weights={"car": {"cov": 0.5, "bbox": 0.5}},
        validation_cost=0.02,
        mean_average_precision=0.625,
        average_precision={"car": 0.75, "person": 0.5},
        images_per_second=12.3456,
        epoch_seconds=41.2,
        eta_seconds=3600 + 125,
    )
    assert rec["epoch"] == 3 and rec["max_epoch"] == 120 and rec["step"] == 300
    assert rec["loss"] == 0.0125 and rec["learning_rate"] == 5e-4
    assert rec["costs"] == {"car": {"cov": 0.01, "bbox": 0.0025}}
    assert rec["mean_average_precision"] == 0.625
    assert rec["average_precision"] == {"car": 0.75, "person": 0.5}
    assert rec["images_per_second"] == 12.346
    assert rec["time_per_epoch"] == "0:00:41" and rec["eta"] == "1:02:05"
    # TAO's blocks: AP in percent
    assert rec["graphical"] == {"loss": 0.0125, "learning_rate": 5e-4}
    assert rec["kpi"] == {"validation cost": 0.02, "mean average precision": 62.5}
    assert rec["categorical"] == {"average_precision": {"car": 75.0, "person": 50.0}}
    # no validation this epoch: no validation keys at all
    assert not {"kpi", "categorical", "mean_average_precision"} & set(record(1))


def test_lines_are_json_with_envelope_and_nan_becomes_null(tmp_path):
    log = StatusLog(tmp_path / "status.json")
    log.event("STARTED", "Starting DetectNet_v2 training")
    log.write(record(1, costs={"car": {"cov": float("nan")}}))
    lines = (tmp_path / "status.json").read_text().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["status"] == "STARTED" and first["message"] == "Starting DetectNet_v2 training"
    assert {"date", "time", "verbosity", "timestamp"} <= set(first)
    assert second["status"] == "RUNNING" and second["epoch"] == 1
    assert second["costs"] == {"car": {"cov": None}}


def test_truncated_last_line_is_repaired_on_open(tmp_path):
    path = tmp_path / "status.json"
    log = StatusLog(path)
    log.write(record(1))
    log.write(record(2))
    good = path.read_bytes()
    path.write_bytes(good + b'{"epoch": 3, "lo')  # killed mid-write
    assert repair_status_file(path) == len(b'{"epoch": 3, "lo')
    assert path.read_bytes() == good
    assert repair_status_file(path) == 0
    path.write_bytes(good + b'{"epoch": 3')
    StatusLog(path).write(record(3))  # reopening repairs, then appends a clean line
    assert [r["epoch"] for r in read_status(path)] == [1, 2, 3]


def test_resume_drops_epochs_after_the_checkpoint(tmp_path):
    path = tmp_path / "status.json"
    log = StatusLog(path)
    log.event("STARTED", "start")
    for epoch in (1, 2, 3, 4):
        log.write(record(epoch))
    # killed after epoch 4, resumed from the checkpoint of epoch 2
    log = StatusLog(path, resume_epoch=2)
    log.event("STARTED", "resumed from epoch 2")
    log.write(record(3))
    statuses = [(r.get("epoch"), r["status"]) for r in read_status(path)]
    assert statuses == [
        (None, "STARTED"),
        (1, "RUNNING"),
        (2, "RUNNING"),
        (None, "STARTED"),
        (3, "RUNNING"),
    ]


def test_disabled_log_writes_nothing(tmp_path):
    StatusLog(tmp_path / "status.json", enabled=False).write(record(1))
    assert not (tmp_path / "status.json").exists()


def test_tensorboard_scalars(tmp_path):
    writer = TensorBoardWriter(tmp_path)
    writer.epoch(
        record(
            2,
            costs={"car": {"cov": 0.25}},
            mean_average_precision=0.5,
            average_precision={"car": 0.5},
        )
    )
    writer.close()
    values = {}
    for path in tmp_path.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    assert values["loss"] == (2, pytest.approx(0.25))
    assert values["learning_rate"] == (2, pytest.approx(5e-4))
    assert values["cost/car/cov"] == (2, pytest.approx(0.25))
    assert values["validation/mAP"] == (2, pytest.approx(0.5))
    assert values["validation/AP/car"] == (2, pytest.approx(0.5))
    assert "validation/cost" not in values  # None values are skipped


def test_status_and_progress_modules_do_not_need_tensorflow():
    # evaluate / inference / export use them too; TensorFlow is blocked in a fresh interpreter.
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "import tao_qat.common.progress, tao_qat.training.status\n"
        "import pathlib, tempfile\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "tao_qat.training.status.StatusLog(d / 's.json').event('STARTED', 'x')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]

"""Full disk while appending a ``status.json`` line: one OSError naming the file and the epoch.

``status.json`` is a symlink to ``/dev/full`` (every write fails with ENOSPC) for the messages,
and a real tmpfs filled up (``full_disk_run.py``) for the cut-back of a partly written line.
"""

import errno
import json
import logging
import os
import subprocess
import sys

import pytest
from test_reliability_full_disk import run_on_tmpfs

from tao_qat.training.status import StatusLog, epoch_record

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


def _one_line(exc):
    """The line ``qat`` prints for an OSError (cli/main.py): ``<filename>: <strerror>``."""
    return f"{exc.filename}: {exc.strerror}"


@pytest.fixture
def full_status(tmp_path):
    """``<tmp>/results/status.json`` -> /dev/full."""
    path = tmp_path / "results" / "status.json"
    path.parent.mkdir()
    path.symlink_to("/dev/full")
    return path


@needs_dev_full
def test_a_status_line_that_cannot_be_appended_names_status_json_and_the_epoch(full_status):
    log = StatusLog(full_status)
    with pytest.raises(OSError) as caught:
        log.write(epoch_record(3, 10, loss=0.25, learning_rate=1e-3))
    assert caught.value.errno == errno.ENOSPC
    assert _one_line(caught.value) == (
        f"{full_status}: cannot append the status of epoch 3 (No space left on device)"
    )
    with pytest.raises(OSError) as caught:
        StatusLog(full_status).event("STARTED", "Starting DetectNet_v2 training")
    assert _one_line(caught.value) == (
        f"{full_status}: cannot append the STARTED status (No space left on device)"
    )


# Resuming reads status.json; read in a child process limited to 1 GiB (reads of /dev/full
# never end: without the check that it is a regular file this used up all memory).
_RESUME = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from tao_qat.training.status import StatusLog, read_status
StatusLog(sys.argv[1], resume_epoch=2)
print(read_status(sys.argv[1]))
"""


@needs_dev_full
def test_resuming_with_a_device_as_status_json_reads_no_records(full_status):
    done = subprocess.run(
        [sys.executable, "-c", _RESUME, str(full_status)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr[-2000:]


@needs_dev_full
def test_a_failure_record_that_cannot_be_appended_does_not_hide_the_error(full_status, caplog):
    # The FAILURE record is written while the real error propagates: never raise, warn once.
    with caplog.at_level(logging.WARNING, logger="tao_qat.training.status"):
        StatusLog(full_status).event("FAILURE", "CheckpointWriteError: ...")
        assert caplog.messages == [
            f"{full_status}: cannot append the FAILURE status (No space left on device)"
        ]
        caplog.clear()
        # After the epoch line itself failed (that error is being reported), no second line.
        log = StatusLog(full_status)
        with pytest.raises(OSError):
            log.write(epoch_record(2, 10, loss=0.5, learning_rate=1e-3))
        log.event("FAILURE", "OSError: ...")
        assert caplog.messages == []


# Runs on a 1 MiB tmpfs: write the STARTED line, fill the disk, append an epoch line of 6000
# bytes (the first part fits in the status file's last 4 KiB page, the rest does not: a short
# write, then ENOSPC) and a FAILURE line (about 170 bytes, fits in that page).
_FILL_AND_APPEND = """
import json, os, sys
from tao_qat.training.status import StatusLog, epoch_record
disk = sys.argv[1]
log = StatusLog(os.path.join(disk, "results", "status.json"))
log.event("STARTED", "Starting DetectNet_v2 training")
fd = os.open(os.path.join(disk, "filler"), os.O_WRONLY | os.O_CREAT)
for chunk in (65536, 4096, 1):
    try:
        while True:
            os.write(fd, b"x" * chunk)
    except OSError:
        pass
os.close(fd)
report = {}
try:
    log.write(epoch_record(1, 4, loss=0.5, learning_rate=1e-3), message="m" * 6000)
except OSError as exc:
    report["error"] = f"{exc.filename}: {exc.strerror}"
log.event("FAILURE", "OSError")
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="tmpfs")
def test_a_partly_appended_line_is_cut_off_on_a_full_tmpfs(tmp_path):
    disk = tmp_path / "disk"
    report = run_on_tmpfs(tmp_path, "1m", "-", [sys.executable, "-c", _FILL_AND_APPEND, str(disk)])
    assert report["returncode"] == 0, report["stderr"][-3000:]
    status = disk / "results" / "status.json"
    assert json.loads(report["stdout"]) == {
        "error": f"{status}: cannot append the status of epoch 1 (No space left on device)"
    }
    assert report["free"] == 0  # the disk was really full
    # The part of the epoch line that fitted was cut off again, so the short FAILURE line (it
    # fits in the file's last page) is a whole line of its own, not glued to a partial one.
    lines = (tmp_path / "copy" / "results" / "status.json").read_text().split("\n")
    assert lines[-1] == ""
    assert [json.loads(line)["status"] for line in lines[:-1]] == ["STARTED", "FAILURE"]
    assert (tmp_path / "copy" / "filler").stat().st_size > 900_000

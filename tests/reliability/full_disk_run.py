"""Run a ``qat`` command whose outputs go to a small tmpfs; print a JSON report (full-disk tests).

Usage::

    python full_disk_run.py MOUNT COPY SIZE WATCH -- COMMAND...

Mounts a tmpfs of SIZE (e.g. ``400m``) on MOUNT, runs COMMAND, and, when WATCH is a path (not
``-``), waits for it to appear (e.g. ``<results>/checkpoints/epoch-1``), stops COMMAND with
SIGSTOP, shrinks the tmpfs to the space used plus a margin read from the files of that first
checkpoint (env ``FULL_DISK_MARGIN``: ``half_hdf5`` = half a ``model.epoch-<E>.hdf5``, so the
next one cannot be written; ``hdf5_and_half_checkpoint`` = one .hdf5 plus half a resumable
checkpoint, so the next .hdf5 fits and its checkpoint does not), and resumes it with SIGCONT.
Then it lists every file (``files``) and every file and folder (``entries``) on the tmpfs,
hidden ones too, copies MOUNT to COPY and unmounts.
Run as root, or under ``unshare -rm``. Exit code 77 (and a message on stderr) when the tmpfs
cannot be mounted.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MOUNT_FAILED = 77


def _mount(mount, size):
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )


def _used(mount):
    stat = os.statvfs(mount)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def _margin(watch):
    """Bytes of free space to leave after the first checkpoint ``watch`` (its folder)."""
    results = Path(watch).parent.parent
    epoch = Path(watch).name.split("-")[1]
    hdf5 = (results / f"model.epoch-{epoch}.hdf5").stat().st_size
    checkpoint = sum(p.stat().st_size for p in Path(watch).iterdir())
    kind = os.environ.get("FULL_DISK_MARGIN", "half_hdf5")
    return hdf5 // 2 if kind == "half_hdf5" else hdf5 + checkpoint // 2


def _shrink_after(process, mount, watch, report, timeout=300):
    """Wait for ``watch`` to be complete, pause the process, shrink the tmpfs, resume it."""
    marker = Path(watch) / "COMPLETE.json"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return
        time.sleep(0.005)
    process.send_signal(signal.SIGSTOP)
    try:
        used = _used(mount)
        size = used + _margin(watch)
        result = subprocess.run(
            ["mount", "-o", f"remount,size={size // 1024 + 1}k", str(mount)],
            capture_output=True,
            text=True,
        )
        report.update(used_at_shrink=used, size=size, remount=result.returncode)
    finally:
        process.send_signal(signal.SIGCONT)


def main(argv):
    separator = argv.index("--")
    mount, copy, size, watch = argv[:separator]
    command = argv[separator + 1 :]
    mount = Path(mount)
    mount.mkdir(parents=True, exist_ok=True)
    mounted = _mount(mount, size)
    if mounted.returncode != 0:
        print(f"mount -t tmpfs: {mounted.stderr.strip()}", file=sys.stderr)
        return MOUNT_FAILED
    report = {"command": command}
    process = None
    try:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if watch != "-":
            _shrink_after(process, mount, watch, report)
        out, err = process.communicate(timeout=600)
        report.update(returncode=process.returncode, stdout=out, stderr=err)
        entries = sorted(mount.rglob("*"))
        report["files"] = [p.relative_to(mount).as_posix() for p in entries if p.is_file()]
        report["entries"] = [p.relative_to(mount).as_posix() for p in entries]
        report["free"] = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        shutil.copytree(mount, copy, dirs_exist_ok=True)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run(["umount", str(mount)], check=False)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

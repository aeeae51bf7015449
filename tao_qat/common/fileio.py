"""Atomic, non-clobbering file output.

``atomic_path`` yields a temporary path in the destination folder; the caller writes there and
the file is renamed over the final name only when the block finishes without an exception, so a
killed or failed run never leaves a partial file under a final name. ``atomic_paths`` does the
same for a set of files that only make sense together (the shards of a dataset). A full disk
(or quota) while writing becomes ``OSError(ENOSPC, ..., <final path>)``: one line naming the
file the user asked for, not the temp file, and the temp file is removed.
"""

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from tao_qat.common.errors import OutputExistsError


def check_writable_output(path, force=False):
    """Raise OutputExistsError if ``path`` exists and ``force`` is false; return it as a Path."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    return path


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temp path next to ``path``; on success fsync and rename it to ``path``.

    Args:
        path: final destination (str or Path). Its parent folder is created if needed.
        suffix: suffix of the temp file (default ``.tmp`` + the final suffix, so libraries that
            dispatch on the extension, like Keras, still see ``.hdf5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else ".tmp" + path.suffix,
        dir=path.parent,
    )
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except Exception as exc:
        code = disk_full_errno(exc)
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_paths(paths, marker, suffix=".tmp"):
    """Yield temp paths (list) for ``paths`` written as one set; rename them all at the end.

    Nothing appears under a final name until every file is written. The renames are not one
    atomic step: ``marker`` (a JSON list of the final paths) is written before them and removed
    after, so a run killed while renaming leaves the marker, and ``discard_interrupted(marker)``
    in the next run removes that incomplete set. On an exception every temp file is removed.
    """
    paths = [Path(p) for p in paths]
    marker = Path(marker)
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(p, suffix=suffix)) for p in paths]
        yield temps
        atomic_write_text(marker, json.dumps([str(p.absolute()) for p in paths]) + "\n")
    marker.unlink()
    fsync_dir(marker.parent)


def discard_interrupted(marker):
    """Remove the files listed in an ``atomic_paths`` marker left by a run killed while renaming
    its outputs, then the marker; return the removed paths (empty if there is no marker)."""
    marker = Path(marker)
    if not marker.exists():
        return []
    try:
        listed = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:  # cannot happen (written atomically); do not trust it then
        listed = []
    removed = []
    for name in listed:
        path = Path(name)
        if path.is_file():
            path.unlink()
            removed.append(path)
    marker.unlink()
    fsync_dir(marker.parent)
    return removed


_DISK_FULL = {
    errno.ENOSPC: "No space left on device",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EFBIG: "File too large",
}


def disk_full_errno(exc):
    """ENOSPC / EDQUOT / EFBIG if ``exc`` (any exception, e.g. an h5py ``OSError`` or a
    TensorFlow ``ResourceExhaustedError``) reports a full disk, quota or file size limit, else
    None. Libraries that do not set ``errno`` are recognised by the C library's message."""
    code = getattr(exc, "errno", None)
    if code in _DISK_FULL:
        return code
    text = str(exc)
    return next((c for c, message in _DISK_FULL.items() if message in text), None)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text):
    """Write ``text`` (str, UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder):
    """fsync a folder so a rename inside it survives a power cut (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

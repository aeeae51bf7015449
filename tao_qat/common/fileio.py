"""Atomic, non-clobbering file output.

``atomic_path`` yields a temporary path in the destination folder; the caller writes there and
the file is renamed over the final name only when the block finishes without an exception, so a
killed or failed run never leaves a partial file under a final name.
"""

import contextlib
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
        prefix=f".{path.name}.", suffix=suffix if suffix is not None else ".tmp" + path.suffix,
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
    finally:
        if tmp.exists():
            tmp.unlink()


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

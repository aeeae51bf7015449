"""All-or-nothing output of a command that writes several files (``qat export``).

Each output is first written under its final file name inside a hidden staging folder
(``.qat_export_<random>/``) created in the destination folder, so writers that need fixed names
(``nvinfer_config.txt``, ``labels.txt``) work unchanged. ``commit`` renames every staged file
over its final name (same file system: ``os.replace`` is atomic) only once everything has been
written; an exception discards the staging folders. A failed or killed export therefore leaves
no file under a final name (a kill can leave a hidden staging folder behind), and running the
same command again succeeds. An ``OSError`` leaving the block (a full disk while writing a
staged file) names the final output, not its staged copy, so the user's one-line error names
the file they asked for.
"""

import os
import shutil
import tempfile
from pathlib import Path

from tao_qat.common.errors import OutputExistsError, UsageError
from tao_qat.common.fileio import check_writable_output, fsync_dir

STAGING_PREFIX = ".qat_export_"


def _key(path):
    return Path(os.path.abspath(path))


class StagedOutputs:
    """A set of output files written together (use as a context manager).

    Args:
        force: overwrite existing final files (else OutputExistsError, checked by ``check``
            before any work and again at ``commit``).
    """

    def __init__(self, force=False):
        self.force = force
        self._staged = {}  # final path -> staged path, in staging order
        self._folders = {}  # destination folder -> its staging folder

    def check(self, paths):
        """Refuse existing outputs and duplicates; ``paths`` may contain None (skipped)."""
        seen = set()
        for path in paths:
            if path is None:
                continue
            key = _key(path)
            if key in seen:
                raise UsageError(f"{path}: named for two different outputs; choose other names")
            seen.add(key)
            if key.is_dir():
                raise UsageError(f"{path}: is a folder, expected an output file name")
            check_writable_output(path, self.force)

    def staging_folder(self, folder):
        """The staging folder for files whose final folder is ``folder`` (created on demand)."""
        folder = _key(folder)
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders[folder] = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
        return self._folders[folder]

    def stage(self, final_path):
        """Return the path to write ``final_path``'s content to (it does not exist yet)."""
        final = _key(final_path)
        if final not in self._staged:
            try:
                folder = self.staging_folder(final.parent)
            except OSError as exc:  # the staging folder cannot be created (full disk)
                if Path(exc.filename or "").name.startswith(STAGING_PREFIX):
                    exc.filename = str(final)
                raise
            self._staged[final] = folder / final.name
        return self._staged[final]

    def final_name(self, path):
        """The final path that ``path`` (a staged file, or anything inside a staging folder)
        stands for; None for paths outside the staging folders."""
        path = _key(path)
        for final, staged in self._staged.items():
            if path == staged:
                return final
        for folder, staging in self._folders.items():
            if path == staging or staging in path.parents:
                return folder / path.relative_to(staging)
        return None

    def as_seen_from_staging(self, folder, final_path):
        """A path that lies, relative to ``folder``'s staging folder, where ``final_path`` lies
        relative to ``folder``: writers that store relative paths (DeepStream config) then
        write the paths that are right once the files are committed."""
        relative = os.path.relpath(_key(final_path), _key(folder))
        return self.staging_folder(folder) / relative

    def commit(self):
        """Rename every staged file over its final name; return the final paths in order."""
        missing = [str(final) for final, staged in self._staged.items() if not staged.is_file()]
        if missing:
            raise RuntimeError(f"staged outputs were never written: {missing}")
        if not self.force:
            for final in self._staged:
                if final.exists():
                    raise OutputExistsError(final)
        for final, staged in self._staged.items():
            os.replace(staged, final)
        for folder in self._folders:
            fsync_dir(folder)
        self.discard()
        return list(self._staged)

    def discard(self):
        """Delete the staging folders and whatever is still in them."""
        for staging in self._folders.values():
            shutil.rmtree(staging, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.discard()
        if isinstance(exc, OSError):
            for attribute in ("filename", "filename2"):
                name = getattr(exc, attribute)
                final = self.final_name(name) if isinstance(name, str | os.PathLike) else None
                if final is not None:
                    setattr(exc, attribute, str(final))
        return False

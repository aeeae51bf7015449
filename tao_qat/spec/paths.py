"""Paths written in spec files, resolved the one way every command uses (TF-free).

A tao_qat extension to TAO (which takes relative paths from its working directory): a relative
path in a spec is taken from the spec file's folder, so example specs work from any clone
location; ``~`` is expanded; absolute paths are unchanged.
"""

import os
from pathlib import Path


def resolve_spec_path(value, spec_dir=None):
    """``value`` (str) made absolute against ``spec_dir``; returns str (globs stay globs).

    Args:
        value: a path or glob from a spec field.
        spec_dir: the spec file's folder; None keeps relative paths relative to the working
            directory (as TAO).
    """
    path = os.path.expanduser(str(value))
    if spec_dir is not None and not os.path.isabs(path):
        path = os.path.abspath(os.path.join(os.fspath(spec_dir), path))
    return path


def spec_dir_of(spec_path):
    """The folder relative paths of ``spec_path`` are taken from (absolute)."""
    return Path(spec_path).resolve().parent

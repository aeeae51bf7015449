"""User-facing errors: one clear line naming the file, line, field path or flag.

Library code raises these for anything a user can cause (bad spec, missing file, bad label,
contradictory flags). The CLI prints ``qat <command>: error: <message>`` and exits non-zero;
``--verbose`` adds the traceback. ``assert`` is only for internal invariants.
"""


class QatError(Exception):
    """Base class for errors caused by user input. ``str(err)`` is the one line shown."""

    exit_code = 1


class SpecError(QatError):
    """A spec file is malformed or invalid (message names file:line:column or a field path)."""


class DataError(QatError):
    """Input data is unusable (message names the file and, where known, the line)."""


class UsageError(QatError):
    """Flags are missing, contradictory or name things that do not exist."""

    exit_code = 2


class OutputExistsError(UsageError):
    """An output already exists and ``--force`` was not given."""

    def __init__(self, path):
        super().__init__(f"{path}: already exists (use --force to overwrite)")
        self.path = path


class MissingDependencyError(QatError):
    """An optional dependency (TensorRT, pycuda, an NVIDIA GPU) is needed but not available."""

"""Optional dependencies (TensorRT, pycuda, an NVIDIA GPU): import them or fail with one line.

Every TensorRT code path calls these helpers first, so a machine without TensorRT or without a
GPU gets one ``MissingDependencyError`` saying what is missing, never an ImportError traceback.
The ``*_missing_reason`` functions return that line (or None) without raising, for pytest skips.
"""

import importlib

from tao_qat.common.errors import MissingDependencyError

INSTALL_HINT = "pip install tao-qat[tensorrt] on a machine with an NVIDIA GPU"
TENSORRT_MISSING = f"TensorRT is not installed ({INSTALL_HINT})"
PYCUDA_MISSING = f"pycuda is not installed ({INSTALL_HINT})"
NO_GPU = "no NVIDIA GPU found"


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def optional_import(module_name, message):
    """Import ``module_name`` or raise MissingDependencyError(message).

    A module that is absent gives ``message`` alone; one that is present but fails to load
    (a missing shared library, a CUDA mismatch) adds the loader's first line, so a broken
    install is told apart from a missing one. A namespace package (a folder without
    ``__init__.py`` named like the module, e.g. a test folder) counts as absent.
    """
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.split(".")[0] == exc.name.split(".")[0]:
            raise MissingDependencyError(message) from None
        raise MissingDependencyError(f"{message}: import failed ({_first_line(exc)})") from None
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(f"{message}: import failed ({_first_line(exc)})") from None
    if getattr(module, "__file__", None) is None:  # a bare folder of that name on sys.path
        raise MissingDependencyError(message)
    return module


def require_tensorrt():
    """The ``tensorrt`` module, or MissingDependencyError(TENSORRT_MISSING)."""
    return optional_import("tensorrt", TENSORRT_MISSING)


def require_cuda_context():
    """``pycuda.driver`` with a CUDA context current on GPU 0 (``pycuda.autoinit``).

    Raises MissingDependencyError: PYCUDA_MISSING without pycuda, NO_GPU (with CUDA's reason)
    when no GPU or driver answers.
    """
    driver = optional_import("pycuda.driver", PYCUDA_MISSING)
    try:
        importlib.import_module("pycuda.autoinit")
    except ImportError as exc:
        raise MissingDependencyError(
            f"{PYCUDA_MISSING}: import failed ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # pycuda raises its own driver errors when cuInit fails
        raise MissingDependencyError(f"{NO_GPU} (CUDA: {_first_line(exc)})") from None
    return driver


def tensorrt_missing_reason():
    """None when ``import tensorrt`` works, else the one-line reason."""
    try:
        require_tensorrt()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def gpu_missing_reason():
    """None when pycuda sees at least one NVIDIA GPU, else the one-line reason."""
    try:
        driver = optional_import("pycuda.driver", PYCUDA_MISSING)
    except MissingDependencyError as exc:
        return str(exc)
    try:
        driver.init()
        count = driver.Device.count()
    except Exception as exc:  # pycuda's driver errors (no driver, no device)
        return f"{NO_GPU} (CUDA: {_first_line(exc)})"
    return None if count > 0 else NO_GPU

"""The single import point for TensorFlow and legacy Keras 2 (tf_keras).

Everything in tao_qat that needs TensorFlow does ``from tao_qat.common.tensorflow_setup import
tf, keras``. Importing this module sets ``TF_USE_LEGACY_KERAS=1`` (needed by
tensorflow-model-optimization) before TensorFlow is imported, and keeps TensorFlow's C++ log
off the user's terminal, next to our one-line errors:

- start-up chatter (oneDNN notice, "Could not find cuda drivers", cuInit failures on machines
  without a GPU, written to stderr before logging is configured): stderr is pointed at
  /dev/null while TensorFlow loads and initialises its devices;
- C++ log lines while working (``E0000 ... jpeg_mem.cc] Premature end of JPEG data`` for a
  truncated JPEG, oneDNN's ``E0000 ... DT_INT32 only on platforms with AVX-512``, tf.data's
  ``W0000 ... Local rendezvous is aborting``): ``TF_CPP_MIN_LOG_LEVEL=3`` (fatal only). What
  they report reaches the user as a Python exception, turned into one line.

With ``TAO_QAT_VERBOSE=1`` (set by ``qat -v``) both are shown (``TF_CPP_MIN_LOG_LEVEL=0``).
A ``TF_CPP_MIN_LOG_LEVEL`` set by the user is kept as it is.
"""

import contextlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL", "0" if os.environ.get("TAO_QAT_VERBOSE") == "1" else "3"
)


@contextlib.contextmanager
def _quiet_stderr():
    """Redirect file descriptor 2 to /dev/null inside the block (Python exceptions still
    propagate normally; only text written directly to stderr is dropped)."""
    if os.environ.get("TAO_QAT_VERBOSE") == "1":
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _quiet_stderr():
    import tensorflow as tf
    import tf_keras as keras

    tf.config.list_physical_devices()  # device discovery logs the CUDA probe failures

tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras"]

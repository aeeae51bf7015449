"""The single import point for TensorFlow and legacy Keras 2 (tf_keras).

Everything in tao_qat that needs TensorFlow does ``from tao_qat.common.tensorflow_setup import
tf, keras``. Importing this module sets ``TF_USE_LEGACY_KERAS=1`` (needed by
tensorflow-model-optimization) before TensorFlow is imported, and keeps TensorFlow's C++
start-up chatter (oneDNN notice, "Could not find cuda drivers", cuInit failures on machines
without a GPU, written to stderr before logging is configured) off the user's terminal: stderr
is pointed at /dev/null while TensorFlow loads and initialises its devices, unless
``TAO_QAT_VERBOSE=1`` (set by ``qat -v``).
"""

import contextlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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

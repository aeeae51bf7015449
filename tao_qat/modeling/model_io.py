"""Model files: atomic .hdf5 saving and loading that never runs code embedded in a file.

Keras' HDF5 loader rebuilds ``Lambda`` layers from marshalled bytecode and ``TFOpLambda``
layers from TF function names, i.e. it can run whatever a file author put there (see
trials.md). ``load_model_file`` therefore reads the model config JSON with h5py first and
refuses any layer class outside an allow-list of built-in layers plus our custom objects, and
any nested object whose ``module`` would be imported from outside Keras, before Keras sees the
file. With a key (``-k``), files are encrypted (``tao_qat.common.crypto``): they are built and
read in memory, so the plain model never touches the disk, and the same checks apply.
"""

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

from tao_qat.common import crypto
from tao_qat.common.errors import DataError
from tao_qat.common.fileio import atomic_path, check_writable_output

# Re-exported for non-Keras model files (e.g. ONNX): atomic, encrypted when a key is given.
save_bytes = crypto.save_bytes
load_bytes = crypto.load_bytes

logger = logging.getLogger(__name__)

# Built-in Keras layers that only compute with their own weights (no user code).
SAFE_LAYER_CLASSES = frozenset(
    {
        "InputLayer",
        "Conv2D",
        "Conv2DTranspose",
        "DepthwiseConv2D",
        "SeparableConv2D",
        "Dense",
        "BatchNormalization",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Softmax",
        "Add",
        "Subtract",
        "Multiply",
        "Average",
        "Maximum",
        "Minimum",
        "Concatenate",
        "ZeroPadding2D",
        "Cropping2D",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "GlobalMaxPooling2D",
        "UpSampling2D",
        "Flatten",
        "Reshape",
        "Permute",
        "Dropout",
        "SpatialDropout2D",
    }
)
CONTAINER_CLASSES = frozenset({"Functional", "Model", "Sequential"})
CODE_LAYER_CLASSES = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
SAFE_MODULE_ROOTS = ("keras", "tf_keras", "builtins")


def _custom_objects(custom_objects, config=None):
    """Our custom layers, the QAT layers when ``config`` (a model config) contains any (TFMOT
    is imported only then: about 2 s), and the caller's ``custom_objects``."""
    from tao_qat.modeling.layers import CUSTOM_OBJECTS

    found = dict(CUSTOM_OBJECTS)
    if config is not None:
        from tao_qat.quantization.naming import quantized_layers_in_config

        if quantized_layers_in_config(config):
            from tao_qat.quantization.layers import QAT_CUSTOM_OBJECTS

            found.update(QAT_CUSTOM_OBJECTS)
    return {**found, **(custom_objects or {})}


@contextlib.contextmanager
def open_hdf5(path, key=None, missing="model file not found"):
    """Yield a read-only ``h5py.File`` of ``path``, decrypted in memory when it is encrypted.

    Raises DataError ("<path>: <missing>") when the file does not exist, DataError when it is
    not HDF5 or the key is wrong, UsageError when it is encrypted and no key is given.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    source = io.BytesIO(crypto.load_bytes(path, key)) if crypto.is_encrypted(path) else path
    if source is path and crypto.normalize_key(key) is not None:
        logger.warning("%s: is not encrypted; reading it without the key", path)
    try:
        handle = h5py.File(source, "r")
    except OSError as err:
        hint = (
            "; files encrypted by NVIDIA TAO use another format and cannot be read"
            if path.suffix in (".tlt", ".etlt")
            else ""
        )
        raise DataError(f"{path}: not a readable HDF5 model file ({err}{hint})") from None
    with handle:
        yield handle


def _model_config_of(handle, path):
    raw = handle.attrs.get("model_config")
    if raw is None:
        raise DataError(f"{path}: holds no model graph (a weights-only file?)")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        config = json.loads(raw)
    except ValueError as err:
        raise DataError(f"{path}: corrupt model_config JSON ({err})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise DataError(f"{path}: model_config is not a Keras model description")
    return config


def read_model_config(path, key=None):
    """Return the model config dict stored in a Keras HDF5 file, without running Keras.

    Args:
        path: plain or encrypted .hdf5 / .tlt file; key: passphrase of an encrypted file.

    Raises DataError naming the file if it is missing, not HDF5, or holds no model graph.
    """
    with open_hdf5(path, key) as handle:
        return _model_config_of(handle, path)


def _iter_layers(model_entry):
    """Yield (name, class_name, config) of every layer, descending into nested models."""
    layers = model_entry.get("config", {})
    layers = layers.get("layers", []) if isinstance(layers, dict) else layers
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        name = config.get("name", layer.get("name", "?"))
        yield name, layer.get("class_name"), config
        inner = config.get("layer")  # wrappers (e.g. QAT) hold the wrapped layer's entry
        while isinstance(inner, dict):
            inner_config = inner.get("config") if isinstance(inner.get("config"), dict) else {}
            yield f"{name}/{inner_config.get('name', '?')}", inner.get("class_name"), inner_config
            inner = inner_config.get("layer")
        if layer.get("class_name") in CONTAINER_CLASSES:
            yield from _iter_layers(layer)


def _unsafe_nested_object(value, custom_names):
    """Return a description of a nested object Keras would import from outside Keras, or None."""
    if isinstance(value, dict):
        module = value.get("module")
        names = {value.get("class_name"), value.get("registered_name")}
        if (
            module is not None
            and str(module).split(".")[0] not in SAFE_MODULE_ROOTS
            and not (names & custom_names)
        ):
            return f"{value.get('class_name')} from module {module}"
        items = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _unsafe_nested_object(item, custom_names)
        if found:
            return found
    return None


def check_model_config_safe(config, path, custom_objects=None):
    """Raise DataError unless every layer of ``config`` is an allowed class.

    Args:
        config: Keras model config dict (``read_model_config``).
        path: file name used in the message.
        custom_objects: extra {class name: class} the caller trusts (ours are always allowed).
    """
    custom_names = set(_custom_objects(custom_objects, config))
    allowed = SAFE_LAYER_CLASSES | CONTAINER_CLASSES | custom_names
    if config.get("class_name") not in CONTAINER_CLASSES | custom_names:
        raise DataError(f"{path}: top-level object {config.get('class_name')!r} is not a model")
    for name, class_name, layer_config in _iter_layers(config):
        if class_name in CODE_LAYER_CLASSES:
            raise DataError(
                f"{path}: layer {name!r} of type {class_name} would run code embedded in the "
                "file; refusing to load it"
            )
        if class_name not in allowed:
            raise DataError(
                f"{path}: layer {name!r} has type {class_name}, which is neither a built-in "
                "layer nor a known custom object; refusing to load it"
            )
        unsafe = _unsafe_nested_object(layer_config, custom_names)
        if unsafe:
            raise DataError(
                f"{path}: layer {name!r} refers to {unsafe}, which would be imported from "
                "outside Keras; refusing to load it"
            )


def load_model_file(path, custom_objects=None, key=None):
    """Load a Keras .hdf5 model after checking its config; never runs code from the file.

    Args:
        path: .hdf5 (or .h5 full-model) file written by ``save_model`` or TAO; encrypted
            files (any extension) are recognised by their header.
        custom_objects: extra trusted {class name: class}, e.g. QAT layers.
        key: passphrase of an encrypted file (UsageError if it is encrypted and key is empty;
            DataError if the key is wrong); ignored with a warning for a plain file.

    Returns:
        keras.Model, uncompiled (optimizer state and losses are never deserialized).
    """
    with open_hdf5(path, key) as handle:
        config = _model_config_of(handle, path)
        check_model_config_safe(config, path, custom_objects)
        from tao_qat.common.tensorflow_setup import keras

        try:
            return keras.models.load_model(
                handle, custom_objects=_custom_objects(custom_objects, config), compile=False
            )
        except (ValueError, TypeError, KeyError, OSError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path}: cannot load the model ({message})") from None


def _save_h5(model, target):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy")
        model.save(target, include_optimizer=False, save_format="h5")


def save_model(model, path, force=False, key=None):
    """Write ``model`` to ``path`` as Keras HDF5 (no optimizer), atomically; return the Path.

    With a non-empty ``key`` the HDF5 bytes are built in memory and written encrypted
    (``tao_qat.common.crypto``), whatever the extension of ``path``.
    Raises OutputExistsError if ``path`` exists and ``force`` is false.
    """
    import h5py

    path = check_writable_output(path, force)
    if crypto.normalize_key(key) is None:
        with atomic_path(path) as tmp:
            _save_h5(model, str(tmp))
    else:
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as handle:
            _save_h5(model, handle)
        crypto.save_bytes(path, buffer.getvalue(), key=key, force=True)
    logger.info("saved model %s to %s%s", model.name, path, " (encrypted)" if key else "")
    return path

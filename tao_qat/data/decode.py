"""Image reading and decoding inside tf.data with failures that name the file (reference §1.2).

A decode error raised inside a tf.data map carries no file name. ``decode_images`` therefore
decodes each file in a one-element dataset with ``ignore_errors`` and falls back to a flag; a
failed decode then trips an assertion whose message holds ``DATA_ERROR_MARKER`` and the path.
``data_error_from`` / ``reraise_data_errors`` turn that TensorFlow error into a one-line
``DataError`` for the user. Missing files are found earlier, in ``check_images_exist``.
"""

import contextlib
import os
import re

from tao_qat.common.errors import DataError
from tao_qat.common.tensorflow_setup import tf

DATA_ERROR_MARKER = "tao_qat-data-error"
_MARKER_MESSAGE = re.compile(re.escape(DATA_ERROR_MARKER) + r": ([^\]]*)\] \[(.*?)\]", re.S)


def check_images_exist(image_paths, origins=None):
    """Raise DataError naming the first missing image (and how many are missing).

    Args:
        image_paths: sequence of str paths.
        origins: optional sequence (same length) of str describing where each path came from
            (e.g. "train.tfrecord frame/id 'image_2/000001'"), used in the message.
    """
    missing = [i for i, path in enumerate(image_paths) if not os.path.isfile(path)]
    if not missing:
        return
    first = missing[0]
    where = f" (from {origins[first]})" if origins is not None else ""
    more = f"; {len(missing) - 1} more image(s) missing" if len(missing) > 1 else ""
    raise DataError(f"{image_paths[first]}: image file not found{where}{more}")


def _decode(path, channels):
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def _checked_decode(path, channels):
    """One-element dataset: (image uint8 [h, w, channels], ok bool) for ``path``."""
    decoded = tf.data.Dataset.from_tensors(path).map(lambda p: (_decode(p, channels), True))
    fallback = tf.data.Dataset.from_tensors((tf.zeros([1, 1, channels], tf.uint8), False))
    return decoded.ignore_errors().concatenate(fallback).take(1)


def decode_images(dataset, channels, path_key="image_path", image_key="image"):
    """Add a decoded image to each element of a dataset of dicts (parallel, order kept).

    Args:
        dataset: tf.data.Dataset of dicts with a scalar string ``path_key``.
        channels: 1 or 3 (RGB); images are converted to this channel count.
    Returns:
        Dataset of the same dicts plus ``image_key``: uint8 [h, w, channels]. Iterating raises
        tf.errors.InvalidArgumentError with DATA_ERROR_MARKER and the path if a file is not a
        decodable JPEG/PNG/BMP/GIF.
    """

    def one(element):
        path = element[path_key]

        def attach(image, ok):
            check = tf.debugging.Assert(
                ok, [f"{DATA_ERROR_MARKER}: cannot decode image (corrupt or not an image)", path]
            )
            with tf.control_dependencies([check]):
                return {**element, image_key: tf.identity(image)}

        return _checked_decode(path, channels).map(attach)

    return dataset.interleave(
        one, cycle_length=None, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def data_error_from(exc):
    """DataError for a TensorFlow error raised by ``decode_images``; None for other errors."""
    match = _MARKER_MESSAGE.search(str(exc))
    if match is None:
        return None
    return DataError(f"{match.group(2)}: {match.group(1).strip()}")


@contextlib.contextmanager
def reraise_data_errors():
    """Context manager turning decode failures inside tf.data into one-line DataErrors."""
    try:
        yield
    except tf.errors.OpError as exc:
        error = data_error_from(exc)
        if error is None:
            raise
        raise error from exc

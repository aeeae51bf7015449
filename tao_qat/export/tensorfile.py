"""Calibration tensor files: preprocessed network inputs in HDF5 (TAO's TensorFile role,
tao_detectnet_v2.md §9 ``calibration_tensorfile``).

Layout (format_version 1):
    /images  float32 [N, C, H, W]   NCHW, RGB (or grey) in [0, 1]: exactly what the exported
                                    ONNX model takes, so PTQ / TensorRT calibrators feed it as is
    attrs    format_version=1, layout="NCHW", batch_size=<writer batch>, num_batches
Images are stored one per HDF5 chunk and read back in any batch size.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tao_qat.common.errors import DataError, UsageError
from tao_qat.common.fileio import atomic_path, check_writable_output
from tao_qat.spec.paths import spec_dir_of

logger = logging.getLogger(__name__)

DATASET = "images"
FORMAT_VERSION = 1
LAYOUTS = ("NCHW", "NHWC")


def _to_nchw(batch, layout):
    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim != 4:
        raise ValueError(f"expected a 4-D image batch, got shape {batch.shape}")
    return batch if layout == "NCHW" else batch.transpose(0, 3, 1, 2)


def write_tensorfile(path, batches, *, layout="NHWC", max_batches=-1, force=False):
    """Write image batches to an HDF5 tensor file atomically.

    Args:
        batches: iterable of float32 [B, H, W, C] (layout "NHWC", the tf.data convention) or
            [B, C, H, W] ("NCHW"); every batch must have the same image shape.
        max_batches: stop after this many batches (-1 = all).
        force: overwrite an existing file (else OutputExistsError).
    Returns:
        (number of images, number of batches).
    """
    if layout not in LAYOUTS:
        raise UsageError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    path = check_writable_output(path, force)
    images = num_batches = batch_size = 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        dataset = None
        for batch in batches:
            if max_batches >= 0 and num_batches >= max_batches:
                break
            batch = _to_nchw(batch, layout)
            if dataset is None:
                dataset = handle.create_dataset(
                    DATASET,
                    shape=(0, *batch.shape[1:]),
                    maxshape=(None, *batch.shape[1:]),
                    dtype="float32",
                    chunks=(1, *batch.shape[1:]),
                )
            elif batch.shape[1:] != dataset.shape[1:]:
                raise ValueError(
                    f"batch {num_batches}: image shape {batch.shape[1:]} differs "
                    f"from {dataset.shape[1:]}"
                )
            dataset.resize(images + batch.shape[0], axis=0)
            dataset[images:] = batch
            images += batch.shape[0]
            batch_size = max(batch_size, batch.shape[0])
            num_batches += 1
        if dataset is None:
            raise DataError(f"{path}: no images to write")
        handle.attrs.update(
            format_version=FORMAT_VERSION,
            layout="NCHW",
            batch_size=batch_size,
            num_batches=num_batches,
        )
    logger.info("wrote %s: %d images in %d batches", path, images, num_batches)
    return images, num_batches


class TensorFile:
    """Read access to a calibration tensor file (use as a context manager).

    Attributes:
        num_images: N; image_shape: (C, H, W); batch_size: the writer's batch size.
    """

    def __init__(self, path):
        self.path = Path(path)
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 tensor file ({exc})") from None
        if DATASET not in self._handle or self._handle[DATASET].ndim != 4:
            self._handle.close()
            raise DataError(f"{self.path}: no 4-D '{DATASET}' dataset (not a tao_qat tensor file)")
        self._images = self._handle[DATASET]
        self.num_images = int(self._images.shape[0])
        self.image_shape = tuple(int(v) for v in self._images.shape[1:])
        self.batch_size = int(self._handle.attrs.get("batch_size", 1))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self._handle.close()

    def batches(self, batch_size=None, *, max_batches=-1, drop_remainder=False, layout="NCHW"):
        """Yield float32 batches [B, C, H, W] (or [B, H, W, C] with layout "NHWC").

        Args:
            batch_size: default the writer's batch size.
            max_batches: stop after this many (-1 = all).
            drop_remainder: skip a last batch smaller than batch_size (fixed-batch calibrators).
        """
        if layout not in LAYOUTS:
            raise UsageError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
        batch_size = batch_size or self.batch_size
        for count, start in enumerate(range(0, self.num_images, batch_size)):
            if max_batches >= 0 and count >= max_batches:
                return
            batch = self._images[start : start + batch_size]
            if drop_remainder and batch.shape[0] < batch_size:
                return
            yield batch if layout == "NCHW" else batch.transpose(0, 2, 3, 1)


@dataclass
class TensorfileOptions:
    """Flags of ``qat calibration_tensorfile`` as plain values."""

    spec_path: str
    output_path: str
    max_batches: int = -1
    use_validation_set: bool = False
    force: bool = False
    echo: object = print


def run_calibration_tensorfile(options):
    """Write the spec's training (or validation) images, preprocessed without augmentation,
    in batches of training_config.batch_size_per_gpu. Returns (images, batches)."""
    from tao_qat.data.pipeline import build_dataset
    from tao_qat.spec.loader import load_experiment_spec

    if options.max_batches == 0 or options.max_batches < -1:
        raise UsageError(f"-m/--max_batches: {options.max_batches} (use -1 for all or >= 1)")
    check_writable_output(options.output_path, options.force)
    experiment = load_experiment_spec(options.spec_path)
    split = "validation" if options.use_validation_set else "train_eval"
    dataset = build_dataset(experiment, split, spec_dir=spec_dir_of(options.spec_path))
    if options.max_batches > 0:
        dataset = dataset.take(options.max_batches)
    batches = (element["images"].numpy() for element in dataset)
    images, num_batches = write_tensorfile(
        options.output_path,
        batches,
        layout="NHWC",
        max_batches=options.max_batches,
        force=options.force,
    )
    options.echo(
        f"{options.output_path}: {images} images in {num_batches} batches "
        f"(NCHW float32, {split} split)"
    )
    return images, num_batches

"""Calibration batches for INT8 PTQ export (tao_detectnet_v2.md §8: ``--cal_data_file``,
``--cal_image_dir``, ``-e`` with ``--batches`` x ``--batch_size``).

Every source yields float32 NCHW batches [B, C, H, W], RGB (or grey) in [0, 1]: exactly the
exported ONNX input. Sources, first match wins (an explicit calibration flag beats the spec,
which TAO prefers; see docs/export.md "qat export"):

1. ``--cal_data_file`` naming an existing tensor file (``export.tensorfile``);
2. ``--cal_image_dir``: images resized to the network input like ``qat inference`` (bilinear,
   /255, no mean); with a ``--cal_data_file`` that does not exist yet, the batches are also
   saved there as a tensor file (TAO's behaviour);
3. ``-e`` spec: the training split without augmentation (``build_dataset(..., "train_eval")``).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tao_qat.common.errors import DataError
from tao_qat.common.progress import Progress

logger = logging.getLogger(__name__)

SOURCES = ("tensorfile", "images", "spec")


@dataclass(frozen=True)
class CalibrationSource:
    """Where calibration images come from.

    Attributes:
        kind: "tensorfile", "images" or "spec".
        path: the tensor file, image folder or experiment spec.
        save_tensorfile: images only: also write the batches to this new tensor file.
    """

    kind: str
    path: Path
    save_tensorfile: Path | None = None

    def describe(self):
        what = {"tensorfile": "tensor file", "images": "images in", "spec": "training data of"}
        return f"{what[self.kind]} {self.path}"


def choose_source(cal_data_file=None, cal_image_dir=None, spec_path=None):
    """The CalibrationSource selected by the flags (module docstring), or None if none is given.

    Raises DataError when ``cal_data_file`` does not exist and no ``cal_image_dir`` can create it.
    """
    if cal_data_file and Path(cal_data_file).is_file():
        return CalibrationSource("tensorfile", Path(cal_data_file))
    if cal_image_dir:
        save = Path(cal_data_file) if cal_data_file else None
        return CalibrationSource("images", Path(cal_image_dir), save_tensorfile=save)
    if cal_data_file:
        raise DataError(
            f"--cal_data_file {cal_data_file}: file not found (give --cal_image_dir to create it)"
        )
    if spec_path:
        return CalibrationSource("spec", Path(spec_path))
    return None


def _check_shape(batch, input_chw, source):
    if tuple(batch.shape[1:]) != tuple(input_chw):
        raise DataError(
            f"{source}: calibration images are {list(batch.shape[1:])} (C, H, W) but the model "
            f"takes {list(input_chw)}"
        )


def image_batches(folder, input_chw, batch_size, max_batches):
    """NCHW batches of the first ``batch_size * max_batches`` images (sorted names) of
    ``folder``, resized to the network input."""
    from tao_qat.inference.run_inference import list_images, load_image

    channels, height, width = input_chw
    paths = list_images(folder)
    wanted = batch_size * max_batches
    if len(paths) < wanted:
        logger.warning(
            "%s: %d images for %d requested (%d x %d)",
            folder,
            len(paths),
            wanted,
            max_batches,
            batch_size,
        )
    paths = paths[:wanted]
    for start in range(0, len(paths), batch_size):
        images = [
            load_image(p, (width, height), channels)[0] for p in paths[start : start + batch_size]
        ]
        yield np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))


def save_tensorfile(source, path, input_chw, batch_size, max_batches):
    """Write the images of an "images" ``source`` to the new tensor file ``path`` (NCHW; TAO
    creates ``--cal_data_file`` from ``--cal_image_dir``); return a "tensorfile" source of it."""
    from tao_qat.export.tensorfile import write_tensorfile

    batches = image_batches(source.path, input_chw, batch_size, max_batches)
    write_tensorfile(path, batches, layout="NCHW")
    return CalibrationSource("tensorfile", Path(path))


def tensorfile_batches(path, input_chw, batch_size, max_batches):
    """NCHW batches read from a tensor file (re-batched to ``batch_size``)."""
    from tao_qat.export.tensorfile import TensorFile

    with TensorFile(path) as tensors:
        if tensors.image_shape != tuple(input_chw):
            raise DataError(
                f"{path}: tensor file images are {list(tensors.image_shape)} (C, H, W) but the "
                f"model takes {list(input_chw)}"
            )
        yield from tensors.batches(batch_size, max_batches=max_batches)


def spec_batches(experiment, spec_dir, input_chw, batch_size, max_batches):
    """NCHW batches of the spec's training split without augmentation."""
    from tao_qat.data.pipeline import build_dataset

    dataset = build_dataset(experiment, "train_eval", batch_size=batch_size, spec_dir=spec_dir)
    for element in dataset.take(max_batches):
        batch = np.ascontiguousarray(element["images"].numpy().transpose(0, 3, 1, 2))
        _check_shape(batch, input_chw, "-e/--experiment_spec")
        yield batch


def rebatch(batches, size):
    """Re-cut a stream of NCHW batches into batches of exactly ``size`` images (a static-batch
    model takes no other); leftover images are dropped with a warning."""
    pending, count, cut = [], 0, 0
    for batch in batches:
        pending.append(batch)
        count += len(batch)
        while count >= size:
            joined = np.concatenate(pending)
            yield joined[:size]
            pending, count, cut = [joined[size:]], count - size, cut + 1
    if count and not cut:
        raise DataError(f"calibration: {count} images, fewer than the static batch size {size}")
    if count:
        logger.warning("calibration: %d images dropped (static batch size %d)", count, size)


def calibration_batches(
    source,
    input_chw,
    *,
    batch_size,
    max_batches,
    experiment=None,
    fixed_batch=None,
    progress_stream=None,
):
    """Yield float32 NCHW calibration batches from ``source`` with a progress display.

    Args:
        source: CalibrationSource (kind "tensorfile" or "images"; "spec" needs ``experiment``).
        input_chw: (C, H, W) of the model input; other image sizes raise DataError.
        batch_size, max_batches: TAO's ``--batch_size`` and ``--batches``.
        fixed_batch: the model's static batch size (batches are re-cut to it), or None.
    """
    if source.kind == "tensorfile":
        batches = tensorfile_batches(source.path, input_chw, batch_size, max_batches)
    elif source.kind == "images":
        batches = image_batches(source.path, input_chw, batch_size, max_batches)
    elif source.kind == "spec":
        spec_dir = source.path.resolve().parent
        batches = spec_batches(experiment, spec_dir, input_chw, batch_size, max_batches)
    else:
        raise ValueError(f"unknown calibration source {source.kind!r} (one of {SOURCES})")
    counted = _with_progress(batches, max_batches, progress_stream, source)
    if fixed_batch:
        yield from rebatch(counted, fixed_batch)
    else:
        yield from counted


def _with_progress(batches, max_batches, stream, source):
    seen = 0
    with Progress(total=max_batches, desc="calibration", stream=stream, every_steps=1) as progress:
        for batch in batches:
            seen += len(batch)
            progress.update(items=len(batch))
            yield batch
    if not seen:
        raise DataError(f"{source.describe()}: no calibration images")
